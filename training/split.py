"""Patient-level train/val/test split of the chest X-ray pool.

Groups (the manifest's `group` column, one per patient where the source gives one) are
shuffled with a fixed seed within each source and dealt 70/15/15, so every split holds every
collection in the same proportion and no patient appears in two splits.

    python training/split.py --data ../shared/data/cxr --out training/split.csv
"""
import argparse
import csv
import random
from collections import defaultdict

SEED = 20201127
FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/cxr")
    ap.add_argument("--out", default="training/split.csv")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(f"{args.data}/manifest.csv", newline="")))
    groups_by_source = defaultdict(set)
    for r in rows:
        groups_by_source[r["source"]].add(r["group"])
    rng = random.Random(SEED)
    split_of_group = {}
    for source in sorted(groups_by_source):
        groups = sorted(groups_by_source[source])
        rng.shuffle(groups)
        n = len(groups)
        n_train = round(n * FRACTIONS[0][1])
        n_val = round(n * FRACTIONS[1][1])
        for i, g in enumerate(groups):
            split_of_group[g] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "split"])
        for r in sorted(rows, key=lambda r: r["file"]):
            w.writerow([r["file"], split_of_group[r["group"]]])
    counts = defaultdict(lambda: defaultdict(int))
    for r in rows:
        counts[split_of_group[r["group"]]][r["label"]] += 1
    for s, c in sorted(counts.items()):
        print(s, dict(c))


if __name__ == "__main__":
    main()

"""Patient-level train/val/test split of the chest X-ray pool.

Groups (the manifest's `group` column, one per patient where the source gives one) are
shuffled with a fixed seed within each source and dealt 70/15/15, so every split holds every
collection in the same proportion and no patient appears in two splits.

A split only grows. Every film already in the split file (`--keep`, by default the file
being written) keeps its assignment, so the test patients of an earlier pool version stay
test patients and no model's held-out figures are contaminated by a new version. A new film
of a patient already assigned (a group that also has films in the earlier split) joins that
patient's split. The groups that are new altogether are dealt by the same rule, source by
source, each source with its own seeded shuffle, so adding a collection never moves another.

    python training/split.py --data ../shared/data/cxr --out training/split.csv
"""
import argparse
import csv
import os
import random
from collections import defaultdict

SEED = 20201127
FRACTIONS = (("train", 0.70), ("val", 0.15), ("test", 0.15))


def deal(groups, rng):
    """Shuffle `groups` (sorted first, so the order of discovery never matters) and deal them
    70/15/15: {group: split}."""
    groups = sorted(groups)
    rng.shuffle(groups)
    n = len(groups)
    n_train = round(n * FRACTIONS[0][1])
    n_val = round(n * FRACTIONS[1][1])
    return {g: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, g in enumerate(groups)}


def split(rows, kept):
    """{group: split} for every group of `rows`, keeping the assignments of `kept` ({file: split})."""
    of_group = {}
    for r in rows:
        s = kept.get(r["file"])
        if s is None:
            continue
        if of_group.setdefault(r["group"], s) != s:
            raise SystemExit(f"the kept split puts patient {r['group']} in two splits")
    new_by_source = defaultdict(set)
    for r in rows:
        if r["group"] not in of_group:
            new_by_source[r["source"]].add(r["group"])
    if not kept:
        # No earlier split: one generator over the sources in order (the rule pool v1 was
        # split by, so this reproduces v1's split from v1's manifest).
        rng = random.Random(SEED)
        for source in sorted(new_by_source):
            of_group |= deal(new_by_source[source], rng)
        return of_group
    for source in sorted(new_by_source):
        of_group |= deal(new_by_source[source], random.Random(f"{SEED}:{source}"))
    return of_group


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/cxr", help="the pool (training/DATA.md)")
    ap.add_argument("--out", default="training/split.csv")
    ap.add_argument("--keep", help="an earlier split whose assignments stay (default: --out, when it exists)")
    args = ap.parse_args()
    rows = list(csv.DictReader(open(os.path.join(args.data, "manifest.csv"), newline="")))
    keep = args.keep or (args.out if os.path.exists(args.out) else None)
    kept = {r["file"]: r["split"] for r in csv.DictReader(open(keep, newline=""))} if keep else {}
    missing = sorted(set(kept) - {r["file"] for r in rows})
    if missing:
        raise SystemExit(f"{len(missing)} films of the kept split are not in the pool, e.g. {missing[0]}")
    of_group = split(rows, kept)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "split"])
        for r in sorted(rows, key=lambda r: r["file"]):
            w.writerow([r["file"], of_group[r["group"]]])
    counts = defaultdict(lambda: defaultdict(int))
    for r in rows:
        counts[(r["source"], of_group[r["group"]])][r["label"]] += 1
    for (source, s), c in sorted(counts.items()):
        print(f"{source:20s} {s:5s} {dict(c)}")


if __name__ == "__main__":
    main()

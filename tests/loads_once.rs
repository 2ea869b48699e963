//! The model is turned into a plan once, and every classify call reuses it. Its own test
//! binary, so that no other test builds plans in this process meanwhile.

mod common;

use covid_xray::Classifier;

#[test]
fn repeated_classify_calls_reuse_the_loaded_plan() {
    assert_eq!(Classifier::plans_built(), 0);
    let classifier = Classifier::embedded().expect("loads");
    assert_eq!(Classifier::plans_built(), 1);
    let bytes = common::first_of("normal");
    let shared = classifier.clone();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let c = shared.clone();
            let b = bytes.clone();
            std::thread::spawn(move || c.classify(&b).expect("classify").probabilities.covid)
        })
        .collect();
    let first = classifier
        .classify(&bytes)
        .expect("classify")
        .probabilities
        .covid;
    for h in handles {
        assert_eq!(h.join().expect("thread"), first);
    }
    for _ in 0..3 {
        classifier.classify(&bytes).expect("classify");
    }
    assert_eq!(
        Classifier::plans_built(),
        1,
        "classify must not rebuild the plan"
    );
}

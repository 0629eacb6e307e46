//! [`StateStore`](chat_core::store::StateStore): the compare-and-set cell background roles
//! coordinate through.

use crate::Fixture;

conformance!(state_swaps_are_exclusive,);

async fn state_swaps_are_exclusive(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.state("k").await.unwrap(), None);
    assert!(s.swap_state("k", None, "one").await.unwrap());
    assert!(
        !s.swap_state("k", None, "two").await.unwrap(),
        "already present"
    );
    assert!(
        !s.swap_state("k", Some("zero"), "two").await.unwrap(),
        "stale expectation"
    );
    assert!(s.swap_state("k", Some("one"), "two").await.unwrap());
    assert_eq!(s.state("k").await.unwrap().as_deref(), Some("two"));
}

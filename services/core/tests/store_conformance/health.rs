//! [`HealthStore`](chat_core::store::HealthStore): the store answers when the database does, and
//! says "unavailable" (not "bug") when it does not.

use std::time::Duration;

use chat_core::Error;
use chat_core::store::{HealthStore, MySqlStore};

use crate::Fixture;

conformance!(ping_answers,);

async fn ping_answers(f: Fixture) {
    f.store.ping().await.unwrap();
}

#[tokio::test]
async fn mysql_down_is_unavailable_not_a_bug() {
    let store =
        MySqlStore::connect_lazy("mysql://root@127.0.0.1:1/x", 1, Duration::from_millis(500))
            .unwrap();
    let err = store.ping().await.unwrap_err();
    assert!(matches!(err, Error::DatabaseUnavailable(_)), "{err:?}");
}

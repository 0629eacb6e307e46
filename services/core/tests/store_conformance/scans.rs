//! [`ScanStore`](chat_core::store::ScanStore): the repair commands' id-ordered scans.

use chat_core::domain::now;

use crate::{Fixture, TOKEN};

conformance!(repair_scans_walk_everything_in_id_order,);

async fn repair_scans_walk_everything_in_id_order(f: Fixture) {
    let s = &f.store;
    let app = s.insert_application(TOKEN, "a", now()).await.unwrap();
    let c1 = s.insert_chat(app.id, 1, now()).await.unwrap();
    let c2 = s.insert_chat(app.id, 2, now()).await.unwrap();
    for n in 1..=3 {
        s.insert_message(&c1, n, "x", now()).await.unwrap();
        s.insert_message(&c2, n, "y", now()).await.unwrap();
    }
    let first = s.messages_by_id(0, 4, None).await.unwrap();
    let rest = s
        .messages_by_id(first.last().unwrap().id, 4, None)
        .await
        .unwrap();
    assert_eq!((first.len(), rest.len()), (4, 2));
    assert_eq!(s.messages_by_id(0, 10, Some(c2.id)).await.unwrap().len(), 3);
    assert_eq!(s.chat_ids(0, 10).await.unwrap(), vec![c1.id, c2.id]);
    assert_eq!(s.application_ids(0, 10).await.unwrap(), vec![app.id]);
    assert_eq!(s.totals().await.unwrap(), (1, 2, 6));
}

//! Every row of the foundation issue's bad-input list: status and problem-JSON shape, in both
//! modes.

use chat_tests::{Reply, TestApp, both_modes};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// An application with chat 1 holding message 1.
async fn seeded(app: &TestApp) -> String {
    let token = app.new_application("bad input").await;
    app.new_chat(&token).await;
    assert_eq!(
        app.new_message(&token, 1, "hi").await.status,
        StatusCode::CREATED
    );
    token
}

async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut request = app.client.request(method, app.url(path)).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    Reply::from(request.send().await.unwrap()).await
}

async fn unknown_token_or_number_is_404(app: TestApp) {
    let token = seeded(&app).await;
    let unknown = "ffffffffffffffffffffffffffffffff";
    for path in [
        format!("/chat_applications/{unknown}"),
        "/chat_applications/not-a-token".to_owned(),
        format!("/chat_applications/{}", token.to_uppercase()),
        format!("/chat_applications/{unknown}/chats"),
        format!("/chat_applications/{unknown}/chats/1"),
        format!("/chat_applications/{token}/chats/2"),
        format!("/chat_applications/{token}/chats/0"),
        format!("/chat_applications/{token}/chats/2/messages"),
        format!("/chat_applications/{token}/chats/1/messages/2"),
        format!("/chat_applications/{token}/chats/1/messages/0"),
    ] {
        app.get(&path).await.assert_problem(404);
    }
    app.call(
        Method::POST,
        &format!("/chat_applications/{unknown}/chats"),
        None,
    )
    .await
    .assert_problem(404);
    app.new_message(&token, 5, "to nowhere")
        .await
        .assert_problem(404);
    app.call(
        Method::PATCH,
        &format!("/chat_applications/{unknown}"),
        Some(json!({"name": "x"})),
    )
    .await
    .assert_problem(404);
    let detail = app
        .get(&format!("/chat_applications/{token}/chats/7"))
        .await
        .json["detail"]
        .clone();
    assert_eq!(detail, "chat not found");
}

async fn malformed_json_is_400(app: TestApp) {
    let token = seeded(&app).await;
    for (path, body) in [
        ("/chat_applications".to_owned(), "{\"name\": "),
        ("/chat_applications".to_owned(), "not json"),
        ("/chat_applications".to_owned(), "[\"name\"]"),
        (format!("/chat_applications/{token}/chats"), "{"),
        (
            format!("/chat_applications/{token}/chats/1/messages"),
            "{\"body\": \"x\",}",
        ),
    ] {
        raw(&app, Method::POST, &path, Some("application/json"), body)
            .await
            .assert_problem(400);
    }
    raw(
        &app,
        Method::PATCH,
        &format!("/chat_applications/{token}/chats/1/messages/1"),
        Some("application/json"),
        "{]",
    )
    .await
    .assert_problem(400);
}

async fn non_numeric_numbers_are_400(app: TestApp) {
    let token = seeded(&app).await;
    for path in [
        format!("/chat_applications/{token}/chats/abc"),
        format!("/chat_applications/{token}/chats/-1"),
        format!("/chat_applications/{token}/chats/1.5"),
        format!("/chat_applications/{token}/chats/99999999999999999999999"),
        format!("/chat_applications/{token}/chats/x/messages"),
        format!("/chat_applications/{token}/chats/1/messages/abc"),
    ] {
        app.get(&path).await.assert_problem(400);
    }
    app.new_message(&token, 1, "ok").await; // still fine
    raw(
        &app,
        Method::POST,
        &format!("/chat_applications/{token}/chats/one/messages"),
        Some("application/json"),
        "{\"body\":\"x\"}",
    )
    .await
    .assert_problem(400);
}

async fn bad_query_parameters_are_400(app: TestApp) {
    let token = seeded(&app).await;
    for query in [
        "limit=0",
        "limit=201",
        "limit=abc",
        "limit=-1",
        "after=x",
        "before=-3",
        "after=1&before=5",
        "after=1.5",
    ] {
        for base in [
            format!("/chat_applications/{token}/chats"),
            format!("/chat_applications/{token}/chats/1/messages"),
        ] {
            let reply = app.get(&format!("{base}?{query}")).await;
            reply.assert_problem(400);
        }
    }
    let reply = app
        .get(&format!("/chat_applications/{token}/chats?limit=201"))
        .await;
    assert!(
        reply.json["detail"].as_str().unwrap().contains("limit"),
        "{reply:?}"
    );
}

async fn bad_names_are_422_naming_the_field(app: TestApp) {
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": null}),
        json!({"name": 42}),
        json!({"name": "x".repeat(256)}),
        json!({"chat_application": {}}),
        json!({"title": "x"}),
    ] {
        app.post("/chat_applications", body)
            .await
            .assert_invalid_field("name");
    }
    // A POST with no body at all is a missing name, not a media-type problem.
    app.call(Method::POST, "/chat_applications", None)
        .await
        .assert_invalid_field("name");
    let token = app.new_application("rename me").await;
    app.call(
        Method::PUT,
        &format!("/chat_applications/{token}"),
        Some(json!({"name": ""})),
    )
    .await
    .assert_invalid_field("name");
    let too_long = app
        .post("/chat_applications", json!({"name": "é".repeat(256)}))
        .await;
    too_long.assert_invalid_field("name");
    assert!(
        too_long.json["detail"].as_str().unwrap().contains("255"),
        "{too_long:?}"
    );
}

async fn bad_bodies_are_422_naming_the_field(app: TestApp) {
    let token = seeded(&app).await;
    let path = format!("/chat_applications/{token}/chats/1/messages");
    let max = app.settings.max_body_bytes as usize;
    for body in [
        json!({}),
        json!({"body": ""}),
        json!({"body": " \n\t "}),
        json!({"body": 7}),
        json!({"body": ["x"]}),
        json!({"body": "x".repeat(max + 1)}),
        json!({"message": {"text": "x"}}),
    ] {
        app.post(&path, body).await.assert_invalid_field("body");
    }
    app.call(Method::POST, &path, None)
        .await
        .assert_invalid_field("body");
    // The limit counts UTF-8 bytes: 3-byte characters reach it sooner than ASCII.
    let multibyte = "€".repeat(max / 3 + 1);
    app.post(&path, json!({"body": multibyte}))
        .await
        .assert_invalid_field("body");
    let exactly = app.post(&path, json!({"body": "x".repeat(max)})).await;
    assert_eq!(
        exactly.status,
        StatusCode::CREATED,
        "a body of exactly the limit is accepted"
    );
    app.call(
        Method::PATCH,
        &format!("{path}/1"),
        Some(json!({"body": ""})),
    )
    .await
    .assert_invalid_field("body");
}

/// Sends only the headers of a POST whose declared Content-Length is `length`, and reads the
/// answer. The server answers 413 from the header alone and may close at once; a client still
/// writing the body would then see a broken pipe instead of the answer.
async fn declared_too_large(app: &TestApp, path: &str, length: usize) -> Reply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = reqwest::Url::parse(&app.url(path)).unwrap();
    let address = (url.host_str().unwrap().to_owned(), url.port().unwrap());
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n{{\"body\": \""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers without waiting for the body")
    .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    Reply {
        status: StatusCode::from_u16(status).unwrap(),
        content_type: headers
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        headers,
        json: serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
        text: body.to_owned(),
    }
}

async fn request_bodies_over_one_mib_are_413(app: TestApp) {
    let token = seeded(&app).await;
    let huge = format!("{{\"body\": \"{}\"}}", "x".repeat(1024 * 1024 + 1));
    for path in [
        format!("/chat_applications/{token}/chats/1/messages"),
        "/chat_applications".to_owned(),
    ] {
        declared_too_large(&app, &path, huge.len())
            .await
            .assert_problem(413);
    }
    // Without a Content-Length the limit still holds while streaming. The server may answer
    // and close before the client has sent everything; then the client sees the connection
    // close instead of the 413, which is as good (nothing was accepted).
    let token_path = format!("/chat_applications/{token}/chats/1/messages");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = huge
        .into_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let sent = app
        .client
        .post(app.url(&token_path))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    match sent {
        Ok(response) => {
            Reply::from(response).await.assert_problem(413);
        }
        Err(err) => assert!(err.is_request(), "unexpected client error: {err:?}"),
    }
    let listed = app.get(&token_path).await;
    assert_eq!(
        listed.json["data"].as_array().unwrap().len(),
        1,
        "nothing was stored"
    );
}

async fn non_json_media_types_are_415(app: TestApp) {
    let token = seeded(&app).await;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        raw(&app, Method::POST, "/chat_applications", ct, "name=x")
            .await
            .assert_problem(415);
        raw(
            &app,
            Method::POST,
            &format!("/chat_applications/{token}/chats/1/messages"),
            ct,
            "{\"body\":\"x\"}",
        )
        .await
        .assert_problem(415);
        raw(
            &app,
            Method::POST,
            &format!("/chat_applications/{token}/chats"),
            ct,
            "{}",
        )
        .await
        .assert_problem(415);
    }
    let ok = raw(
        &app,
        Method::POST,
        "/chat_applications",
        Some("application/json; charset=utf-8"),
        "{\"name\":\"x\"}",
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    // A POST without a body needs no media type.
    let chat = raw(
        &app,
        Method::POST,
        &format!("/chat_applications/{token}/chats"),
        None,
        "",
    )
    .await;
    assert_eq!(chat.status, StatusCode::CREATED, "{chat:?}");
}

async fn wrong_methods_are_405(app: TestApp) {
    let token = seeded(&app).await;
    for (method, path) in [
        // (DELETE of an application, chat or message is a routed method.)
        (Method::POST, format!("/chat_applications/{token}")),
        (Method::GET, "/chat_applications".to_owned()),
        (Method::PUT, format!("/chat_applications/{token}/chats")),
        (Method::POST, format!("/chat_applications/{token}/chats/1")),
        (
            Method::DELETE,
            format!("/chat_applications/{token}/chats/1/messages"),
        ),
        (
            Method::POST,
            format!("/chat_applications/{token}/chats/1/messages/1"),
        ),
        (Method::POST, "/up".to_owned()),
    ] {
        let reply = app.call(method, &path, None).await;
        reply.assert_problem(405);
        assert!(reply.headers.contains_key("allow"), "{reply:?}");
    }
}

async fn unknown_routes_are_404_problems(app: TestApp) {
    app.get("/nope").await.assert_problem(404);
    app.get("/chat_applications/x/y/z/w/v/u")
        .await
        .assert_problem(404);
}

both_modes!(
    unknown_token_or_number_is_404,
    malformed_json_is_400,
    non_numeric_numbers_are_400,
    bad_query_parameters_are_400,
    bad_names_are_422_naming_the_field,
    bad_bodies_are_422_naming_the_field,
    request_bodies_over_one_mib_are_413,
    non_json_media_types_are_415,
    wrong_methods_are_405,
    unknown_routes_are_404_problems,
);

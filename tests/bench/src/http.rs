//! A minimal HTTP/1.1 keep-alive client over one `TcpStream`: requests are pre-built bytes, the
//! response is parsed with `httparse` and its body returned as a slice of the read buffer. One
//! request in flight per connection (no pipelining), which is what a virtual client is.

use std::io;
use std::net::SocketAddr;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

pub struct Response {
    pub status: u16,
    /// Whether the server asked to close the connection after this response.
    pub close: bool,
    pub body: BytesMut,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|err| {
            anyhow::anyhow!(
                "status {}: response is not JSON ({err}): {}",
                self.status,
                self.text()
            )
        })
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// Sends one complete request and reads its response.
    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(())
    }

    async fn read_response(&mut self) -> io::Result<Response> {
        let (head_len, status, length, chunked, close) = loop {
            if !self.buf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut parsed = httparse::Response::new(&mut headers);
                match parsed.parse(&self.buf) {
                    Ok(httparse::Status::Complete(head_len)) => {
                        let status = parsed.code.unwrap_or(0);
                        let mut length = None;
                        let mut chunked = false;
                        let mut close = false;
                        for h in parsed.headers.iter() {
                            if h.name.eq_ignore_ascii_case("content-length") {
                                let v = std::str::from_utf8(h.value)
                                    .ok()
                                    .and_then(|v| v.trim().parse::<usize>().ok())
                                    .ok_or_else(|| invalid("bad content-length"))?;
                                length = Some(v);
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = h.value.eq_ignore_ascii_case(b"chunked");
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                close = h.value.eq_ignore_ascii_case(b"close");
                            }
                        }
                        break (head_len, status, length, chunked, close);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(err) => return Err(invalid(format!("bad response: {err}"))),
                }
            }
            self.fill().await?;
        };
        self.buf.advance(head_len);
        let body = if chunked {
            self.read_chunked().await?
        } else {
            let length = length.unwrap_or(0);
            while self.buf.len() < length {
                self.fill().await?;
            }
            self.buf.split_to(length)
        };
        Ok(Response {
            status,
            close,
            body,
        })
    }

    async fn read_chunked(&mut self) -> io::Result<BytesMut> {
        let mut body = BytesMut::new();
        loop {
            let line_end = loop {
                if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                self.fill().await?;
            };
            let size_text = std::str::from_utf8(&self.buf[..line_end])
                .map_err(|_| invalid("bad chunk size"))?;
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            self.buf.advance(line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            if size == 0 {
                // No trailers are expected: skip the final CRLF.
                self.buf.advance(2);
                return Ok(body);
            }
            body.extend_from_slice(&self.buf[..size]);
            self.buf.advance(size + 2);
        }
    }
}

/// Builds a complete request. `body` is sent as `application/json`.
pub fn request(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + path.len() + body.map_or(0, str::len));
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: bench\r\n");
    match body {
        Some(body) => {
            out.extend_from_slice(b"Content-Type: application/json\r\nContent-Length: ");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(body.as_bytes());
        }
        None if method == "GET" => out.extend_from_slice(b"\r\n"),
        None => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
    }
    out
}

/// Percent-encodes a query value (letters, digits and `-._~` stay).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request on a fresh connection, for setup and checks (not for load).
pub async fn once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<Response> {
    let mut conn = Conn::connect(addr).await?;
    Ok(conn.send(&request(method, path, body)).await?)
}

/// A connection that reconnects after a failure or a `Connection: close`; for setup work.
pub struct Client {
    addr: SocketAddr,
    conn: Option<Conn>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    pub async fn send(&mut self, request: &[u8]) -> io::Result<Response> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => Conn::connect(self.addr).await?,
        };
        let response = conn.send(request).await?;
        if !response.close {
            self.conn = Some(conn);
        }
        Ok(response)
    }

    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<Response> {
        Ok(self.send(&request(method, path, body)).await?)
    }

    /// A request that must answer `want`, parsed as JSON.
    pub async fn expect(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        want: u16,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self.call(method, path, body).await?;
        if response.status != want {
            anyhow::bail!(
                "{method} {path}: expected {want}, got {}: {}",
                response.status,
                response.text()
            );
        }
        response.json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A server that answers each request with the next canned response, in odd-sized writes.
    async fn canned(responses: Vec<&'static [u8]>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            for response in responses {
                let _ = socket.read(&mut buf).await.unwrap();
                for chunk in response.chunks(7) {
                    socket.write_all(chunk).await.unwrap();
                    socket.flush().await.unwrap();
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn reads_length_and_chunked_bodies_on_one_connection() {
        let addr = canned(vec![
            b"HTTP/1.1 201 Created\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n{\"a\":\"b c\"}",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"x\"\r\n3\r\n:1}\r\n0\r\n\r\n",
            b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        ])
        .await;
        let mut conn = Conn::connect(addr).await.unwrap();
        let r = conn.send(&request("POST", "/x", Some("{}"))).await.unwrap();
        assert_eq!((r.status, r.close), (201, false));
        assert_eq!(r.json().unwrap()["a"], "b c");
        let r = conn.send(&request("GET", "/y", None)).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.json().unwrap()["x"], 1);
        let r = conn.send(&request("POST", "/z", None)).await.unwrap();
        assert_eq!((r.status, r.close, r.body.len()), (503, true, 0));
    }

    #[test]
    fn requests_are_complete_http() {
        let r = String::from_utf8(request("POST", "/a", Some("{\"k\":1}"))).unwrap();
        assert!(r.starts_with("POST /a HTTP/1.1\r\n"), "{r}");
        assert!(r.contains("Content-Length: 7\r\n\r\n{\"k\":1}"), "{r}");
        let r = String::from_utf8(request("POST", "/b", None)).unwrap();
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"), "{r}");
        assert_eq!(encode_query("hello world/ä"), "hello%20world%2F%C3%A4");
    }
}

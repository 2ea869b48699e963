//! A local S3-compatible server over a folder, for trying `xray-s3` under `cargo lambda` without
//! an AWS account: each folder under ROOT is a bucket, each file an object (s3s-fs, the server
//! the S3 tests use), SigV4 checked against the given keys.
//!
//! ```sh
//! mkdir -p /tmp/s3/xray-archive/archive && cp tests/fixtures/xrays/covid/*.jpg /tmp/s3/xray-archive/archive/
//! cargo run --example s3_server -- /tmp/s3 9090      # keys: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, default test/test
//! AWS_ENDPOINT_URL=http://127.0.0.1:9090 ... target/debug/xray-s3   # see docs/deploy.md
//! ```

use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let (Some(root), port) = (args.next(), args.next()) else {
        return Err("usage: s3_server ROOT [PORT]".into());
    };
    let port: u16 = port.as_deref().unwrap_or("9090").parse()?;
    let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
    let fs = s3s_fs::FileSystem::new(&root).map_err(|e| format!("{root}: {e:?}"))?;
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("S3 on http://{} over {root}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
                .ok();
        });
    }
}

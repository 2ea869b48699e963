//! A real S3-compatible server for the S3 tests: s3s-fs over a temporary folder, speaking
//! the S3 protocol over HTTP on loopback with SigV4 checked, and servers that fail on purpose.
#![allow(dead_code)]

use std::convert::Infallible;

use covid_xray::s3::client::S3Store;
use hyper_util::rt::TokioIo;

pub const AK: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub const BUCKET: &str = "xray-uploads";

/// Serves `service` on a fresh loopback port; returns the endpoint URL.
pub async fn serve<S>(service: S) -> String
where
    S: hyper::service::Service<hyper::Request<hyper::body::Incoming>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Into<hyper::Response<s3s::Body>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let fut = service.call(req);
                    async move { fut.await.map(Into::into) }
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await
                    .ok();
            });
        }
    });
    format!("http://{addr}")
}

/// A real S3 server (s3s-fs) over a temporary folder, with one bucket.
pub async fn s3_server() -> (String, S3Store, tempdir::Dir) {
    s3_server_with(|fs| fs).await
}

/// [`s3_server`] with s3s-fs wrapped in another [`s3s::S3`] implementation (one that adds
/// versions, or denies a prefix).
pub async fn s3_server_with<S: s3s::S3>(
    wrap: impl FnOnce(s3s_fs::FileSystem) -> S,
) -> (String, S3Store, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let fs = s3s_fs::FileSystem::new(dir.path()).expect("s3s-fs");
    let mut builder = s3s::service::S3ServiceBuilder::new(wrap(fs));
    builder.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
    let endpoint = serve(builder.build()).await;
    let store = S3Store::with_endpoint(&endpoint, "us-east-1", AK, SK).await;
    store
        .client()
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("create bucket");
    (endpoint, store, dir)
}

/// Every key of the test bucket, under `prefix` when one is given.
pub async fn list_keys(store: &S3Store, prefix: Option<&str>) -> Vec<String> {
    store
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .set_prefix(prefix.map(String::from))
        .max_keys(1000)
        .send()
        .await
        .expect("list")
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

pub mod tempdir {
    /// A folder removed on drop.
    pub struct Dir(std::path::PathBuf);
    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("xray-s3-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).expect("mkdir");
            Dir(p)
        }
        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}

/// A server that answers every request with `status`.
pub async fn failing_server(status: u16) -> String {
    let svc = hyper::service::service_fn(
        move |_req: hyper::Request<hyper::body::Incoming>| async move {
            let mut r = hyper::Response::new(s3s::Body::from(
                "<Error><Code>InternalError</Code><Message>boom</Message></Error>".to_string(),
            ));
            *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
            Ok::<_, Infallible>(r)
        },
    );
    serve(svc).await
}

pub async fn closed_port() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

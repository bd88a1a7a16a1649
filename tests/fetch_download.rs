//! Downloads against a loopback server the test starts itself (never an outside address):
//! digests, mismatches, status codes, retries, cuts, redirects, timeouts, offline, file urls and
//! bounded parallelism.

#[path = "common/http.rs"]
mod http;

use std::time::Duration;

use http::{Reply, TestServer};
use sealroom::ExitCode;
use sealroom::digest::BlobDigest;
use sealroom::error::Failure;
use sealroom::fetch::{
    DownloadRequest, Downloader, DownloaderOptions, FetchError, download, download_all,
};

/// Short timeouts and backoff so failure paths are quick; assertions never depend on timing.
fn options() -> DownloaderOptions {
    DownloaderOptions {
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        retries: 3,
        backoff_base: Duration::from_millis(10),
        progress: false,
        proxy_from_environment: false,
        ..DownloaderOptions::default()
    }
}

fn downloader() -> Downloader {
    Downloader::new(options()).unwrap()
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_good_download_has_the_digest_and_size_of_its_bytes() {
    let server = TestServer::start();
    let bytes = body(300_000);
    server.route("/a.tar.gz", [Reply::ok(bytes.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let expected = BlobDigest::of(&bytes);

    let downloaded = download(
        &downloader(),
        &server.url("/a.tar.gz"),
        Some(&expected),
        &dest,
    )
    .await
    .unwrap();

    assert_eq!(downloaded.digest, expected);
    assert_eq!(downloaded.size, 300_000);
    assert_eq!(downloaded.final_url, server.url("/a.tar.gz"));
    assert!(downloaded.redirects.is_empty());
    assert_eq!(downloaded.attempts, 1);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
}

#[tokio::test]
async fn a_mismatch_names_url_and_both_digests_and_removes_the_file() {
    let server = TestServer::start();
    server.route("/a.tar.gz", [Reply::ok(b"evil".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let expected = BlobDigest::of(b"good");

    let err = download(
        &downloader(),
        &server.url("/a.tar.gz"),
        Some(&expected),
        &dest,
    )
    .await
    .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "sha256 mismatch for {}: expected {}, got {}\nhint: check the url; if the new content is what you want, review it and run `sealroom pin` to update the pin",
            server.url("/a.tar.gz"),
            expected,
            BlobDigest::of(b"evil")
        )
    );
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert!(
        !dest.exists(),
        "a mismatching download must not be left behind"
    );
    assert_eq!(server.requests("/a.tar.gz"), 1, "a mismatch is not retried");
}

#[tokio::test]
async fn a_404_fails_at_once_without_retrying() {
    let server = TestServer::start();
    server.route("/missing", [Reply::status(404)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let err = download(&downloader(), &server.url("/missing"), None, &dest)
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!("GET {}: 404 Not Found", server.url("/missing"))
    );
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert_eq!(server.requests("/missing"), 1);
    assert!(!dest.exists());
}

#[tokio::test]
async fn a_500_then_200_is_retried() {
    let server = TestServer::start();
    server.route("/flaky", [Reply::status(500), Reply::ok(b"fine".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let downloaded = download(
        &downloader(),
        &server.url("/flaky"),
        Some(&BlobDigest::of(b"fine")),
        &dest,
    )
    .await
    .unwrap();

    assert_eq!(downloaded.attempts, 2);
    assert_eq!(server.requests("/flaky"), 2);
    assert_eq!(std::fs::read(&dest).unwrap(), b"fine");
}

#[tokio::test]
async fn a_5xx_that_persists_fails_after_every_attempt() {
    let server = TestServer::start();
    server.route("/down", [Reply::status(503)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let err = download(&downloader(), &server.url("/down"), None, &dest)
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "GET {}: 503 Service Unavailable (after 4 attempts)",
            server.url("/down")
        )
    );
    assert_eq!(server.requests("/down"), 4);
    assert!(!dest.exists());
}

#[tokio::test]
async fn a_body_cut_mid_stream_is_retried() {
    let server = TestServer::start();
    let bytes = body(100_000);
    server.route(
        "/cut",
        [
            Reply::ok(bytes.clone()).cut_after(10_000),
            Reply::ok(bytes.clone()),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let downloaded = download(
        &downloader(),
        &server.url("/cut"),
        Some(&BlobDigest::of(&bytes)),
        &dest,
    )
    .await
    .unwrap();

    assert_eq!(downloaded.attempts, 2);
    assert_eq!(downloaded.size, 100_000);
    assert_eq!(server.requests("/cut"), 2);
}

#[tokio::test]
async fn a_body_always_cut_is_a_clean_error_and_leaves_nothing() {
    let server = TestServer::start();
    server.route("/cut", [Reply::ok(body(100_000)).cut_after(10_000)]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let err = download(&downloader(), &server.url("/cut"), None, &dest)
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(
        message.starts_with(&format!(
            "GET {} failed after 4 attempts: the body ",
            server.url("/cut")
        )),
        "{message}"
    );
    assert!(matches!(err, FetchError::Network { attempts: 4, .. }));
    assert_eq!(server.requests("/cut"), 4);
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing left in the tmp dir"
    );
}

#[tokio::test]
async fn redirects_are_followed_and_recorded() {
    let server = TestServer::start();
    server.route("/old", [Reply::redirect("/middle")]);
    server.route("/middle", [Reply::redirect(&server.url("/new.tar.gz"))]);
    server.route("/new.tar.gz", [Reply::ok(b"moved".to_vec())]);
    let dir = tempfile::tempdir().unwrap();

    let downloaded = download(
        &downloader(),
        &server.url("/old"),
        None,
        &dir.path().join("blob"),
    )
    .await
    .unwrap();

    assert_eq!(downloaded.final_url, server.url("/new.tar.gz"));
    assert_eq!(
        downloaded.redirects,
        vec![server.url("/middle"), server.url("/new.tar.gz")]
    );
    assert_eq!(downloaded.digest, BlobDigest::of(b"moved"));
}

#[tokio::test]
async fn a_redirect_loop_stops_at_the_limit() {
    let server = TestServer::start();
    server.route("/loop", [Reply::redirect("/loop")]);
    let dir = tempfile::tempdir().unwrap();

    let err = download(
        &downloader(),
        &server.url("/loop"),
        None,
        &dir.path().join("blob"),
    )
    .await
    .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "GET {0}: more than 10 redirects (last to {0})",
            server.url("/loop")
        )
    );
    assert_eq!(
        server.requests("/loop"),
        11,
        "the redirect limit is final, not retried"
    );
}

#[tokio::test]
async fn a_silent_body_hits_the_read_timeout() {
    let server = TestServer::start();
    server.route(
        "/slow",
        [Reply::ok(b"late".to_vec()).delay_body(Duration::from_secs(30))],
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let downloader = Downloader::new(DownloaderOptions {
        read_timeout: Duration::from_millis(300),
        retries: 1,
        ..options()
    })
    .unwrap();

    // The bound is generous: the assertion is on the error, not on the time taken.
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        download(&downloader, &server.url("/slow"), None, &dest),
    )
    .await
    .expect("the read timeout must end the download")
    .unwrap_err();

    assert!(
        matches!(err, FetchError::Network { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no data for 300 ms"), "{err}");
    assert_eq!(server.requests("/slow"), 2);
    assert!(!dest.exists());
}

#[tokio::test]
async fn silent_headers_hit_the_read_timeout() {
    let server = TestServer::start();
    server.route(
        "/slow",
        [Reply::ok(b"late".to_vec()).delay_headers(Duration::from_secs(30))],
    );
    let dir = tempfile::tempdir().unwrap();
    let downloader = Downloader::new(DownloaderOptions {
        read_timeout: Duration::from_millis(300),
        retries: 0,
        ..options()
    })
    .unwrap();

    let err = tokio::time::timeout(
        Duration::from_secs(20),
        download(
            &downloader,
            &server.url("/slow"),
            None,
            &dir.path().join("blob"),
        ),
    )
    .await
    .expect("the read timeout must end the download")
    .unwrap_err();

    assert!(
        matches!(err, FetchError::Network { attempts: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "GET {} failed after 1 attempt: ",
            server.url("/slow")
        )),
        "{err}"
    );
}

#[tokio::test]
async fn offline_makes_no_request() {
    let server = TestServer::start();
    server.route("/a", [Reply::ok(b"x".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");
    let downloader = Downloader::new(DownloaderOptions {
        offline: true,
        ..options()
    })
    .unwrap();

    let err = download(&downloader, &server.url("/a"), None, &dest)
        .await
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        format!(
            "offline: this download is not in the store and cannot be fetched without the network:\n  {}\nhint: run `sealroom fetch` with the network on first, or drop --offline",
            server.url("/a")
        )
    );
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert_eq!(server.total_requests(), 0);
    assert!(!dest.exists());
}

#[tokio::test]
async fn file_urls_are_streamed_and_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.tar");
    let bytes = body(70_000);
    std::fs::write(&source, &bytes).unwrap();
    let url = format!("file://{}", source.display());
    let dest = dir.path().join("blob");

    let downloaded = download(&downloader(), &url, Some(&BlobDigest::of(&bytes)), &dest)
        .await
        .unwrap();
    assert_eq!(downloaded.size, 70_000);
    assert_eq!(downloaded.final_url, url);
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);

    let err = download(&downloader(), &url, Some(&BlobDigest::of(b"other")), &dest)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::DigestMismatch { .. }));
    assert!(!dest.exists());

    let missing = format!("file://{}", dir.path().join("missing").display());
    let err = download(&downloader(), &missing, None, &dest)
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with(&format!("read {missing}: ")),
        "{err}"
    );
}

#[tokio::test]
async fn download_all_keeps_order_and_its_parallelism_bound() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut requests = Vec::new();
    for index in 0..6 {
        let path = format!("/item-{index}");
        let content = format!("item {index}").into_bytes();
        // Slow enough that a third download would overlap if the bound were not kept.
        server.route(
            &path,
            [Reply::ok(content.clone()).delay_body(Duration::from_millis(200))],
        );
        requests.push(DownloadRequest {
            url: server.url(&path),
            expected: Some(BlobDigest::of(&content)),
            dest: dir.path().join(format!("blob-{index}")),
            max_bytes: None,
        });
    }
    server.route("/missing", [Reply::status(404)]);
    requests.push(DownloadRequest {
        url: server.url("/missing"),
        expected: None,
        dest: dir.path().join("blob-missing"),
        max_bytes: None,
    });

    let results = download_all(&downloader(), &requests, 2).await;

    assert_eq!(results.len(), 7);
    for (index, result) in results[..6].iter().enumerate() {
        let downloaded = result.as_ref().unwrap();
        assert_eq!(
            downloaded.digest,
            BlobDigest::of(format!("item {index}").as_bytes())
        );
    }
    assert!(matches!(results[6], Err(FetchError::HttpStatus { .. })));
    assert_eq!(server.max_concurrent_total(), 2);
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_reported() {
    // A loopback port with nothing listening: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/a.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("blob");

    let err = download(&downloader(), &url, None, &dest)
        .await
        .unwrap_err();

    assert!(
        matches!(err, FetchError::Network { attempts: 4, .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "GET {url} failed after 4 attempts: cannot connect: "
        )),
        "{err}"
    );
    assert!(!dest.exists());
}

//! The gateway's web page (issue 23), used in Debian's headless Chromium
//! as a person would: a wrong token is refused, the right one logs in and
//! shows the pool, a clip is uploaded through the form, its progress bar
//! reaches done, Play starts hls.js on the output (served by the gateway
//! to the token) and the video advances, and a picked rung plays. Nothing
//! is fetched from anywhere but the gateway. Screenshots are kept in
//! `target/test-artefacts/web-page/`.

use std::path::Path;

use hlsmux_tests::gateway::TestGateway;
use hlsmux_tests::media::Clip;
use hlsmux_tests::{TestEnv, player};

const PERSON: &str = "t0ken-for-a-person-at-a-browser";

#[tokio::test]
async fn a_person_logs_in_uploads_watches_it_finish_and_plays_it_in_the_page() {
    // scripts/provision installs Chromium and the npm packages: their
    // absence is a failure, not a skip.
    if let Some(reason) = player::missing() {
        panic!("the web page cannot be tested: {reason}");
    }
    let test = TestEnv::new("gateway-web-page").await;
    let _worker = test.worker(1).await;
    let gateway = TestGateway::spawn(&test, &[(PERSON, &["submit", "read", "cancel"])]).await;
    let clip = test.elsewhere().join("garden party.mp4");
    Clip {
        seconds: 8,
        ..Clip::default()
    }
    .write(&clip)
    .await;
    let screenshots =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artefacts/web-page");
    let report = player::use_web_page(
        &format!("http://{}", gateway.address),
        PERSON,
        &clip,
        &screenshots,
    )
    .await
    .unwrap_or_else(|report| panic!("the page did not do its job: {report}"));
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 6, "{report}");
    for name in ["1-pool.png", "2-jobs.png", "3-player.png"] {
        let shot = std::fs::metadata(screenshots.join(name)).expect(name);
        assert!(shot.len() > 10_000, "{name} is a real screenshot");
    }
    assert!(
        test.output_root()
            .join("incoming/garden party.mp4.hls/master.m3u8")
            .exists()
    );
}

/// The hls.js the page serves is the one the tests' npm lock names.
#[test]
fn the_vendored_hls_js_is_the_locked_npm_package() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let vendored =
        std::fs::read(repository.join("gateway/ui/vendor/hls.min.js")).expect("vendored hls.js");
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repository.join("tests/player/package-lock.json")).expect("lock"),
    )
    .expect("JSON");
    let locked = lock["packages"]["node_modules/hls.js"]["version"]
        .as_str()
        .expect("hls.js in the lock");
    let banner = String::from_utf8_lossy(&vendored).into_owned();
    assert!(
        banner.contains(&format!("\"{locked}\"")),
        "gateway/ui/vendor/hls.min.js is not hls.js {locked}: copy node_modules/hls.js/dist/hls.min.js"
    );
    if let Ok(installed) =
        std::fs::read(repository.join("tests/player/node_modules/hls.js/dist/hls.min.js"))
    {
        assert!(
            installed == vendored,
            "the vendored copy differs from the installed package"
        );
    }
}

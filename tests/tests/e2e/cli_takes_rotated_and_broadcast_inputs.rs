//! The CLI's own check (ffprobe on this machine, before anything is queued)
//! takes what phones and broadcast recorders write: a clip with rotation
//! metadata (a display matrix) and an MPEG-2 transport stream, whose video
//! streams ffprobe lists with side data. Each is submitted as a person
//! would, without `--no-probe`, and becomes HLS.

use hlsmux_tests::TestEnv;
use hlsmux_tests::media::{Clip, SourceCodec};

#[tokio::test]
async fn a_rotated_phone_clip_and_an_mpeg2_transport_stream_pass_the_cli_check() {
    let test = TestEnv::new("cli-real-inputs").await;
    let _worker = test.worker(1).await;
    let phone = Clip {
        rotation: 90,
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("phone.mp4"))
    .await;
    let broadcast = Clip {
        codec: SourceCodec::InterlacedMpeg2,
        seconds: 2,
        ..Clip::default()
    }
    .write(&test.media_root().join("broadcast.ts"))
    .await;
    for file in [&phone, &broadcast] {
        let run = test.submit_ok(file, &["--muxer", "1", "--wait"]).await;
        assert!(run.stdout.contains("master.m3u8"), "{run:#?}");
    }
}

//! Plan: choose the bitrate/resolution rungs for a source.
//!
//! Rules for every ladder: never upscale, never exceed the source's bitrate,
//! always at least one rung, even dimensions (4:2:0 chroma needs them), a
//! constant frame rate. A table's "lines" are the picture's short side, so a
//! portrait source gets the same ladder as its landscape twin.

use hlsmux_protocol::LadderName;

use crate::pipeline::plan::codec::EncoderLimits;

/// One output variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rung {
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
    pub frame_rate: FrameRate,
}

/// A frame rate as the exact fraction ffprobe reports (`30000/1001`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// Assumed when the input states no rate.
    pub const FALLBACK: FrameRate = FrameRate { num: 25, den: 1 };

    /// Parses ffprobe's `num/den`; `0/0` (unknown) is `None`.
    pub fn parse(text: &str) -> Option<FrameRate> {
        let (num, den) = text.split_once('/')?;
        let rate = FrameRate {
            num: num.trim().parse().ok()?,
            den: den.trim().parse().ok()?,
        };
        (rate.num > 0 && rate.den > 0).then_some(rate)
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Halved until at most `max` frames per second: 60 becomes 30 and
    /// 59.94 becomes 29.97, so every kept frame is a source frame at an even
    /// cadence.
    pub fn at_most(self, max: u32) -> FrameRate {
        let mut rate = self;
        while u64::from(rate.num) > u64::from(max) * u64::from(rate.den) {
            rate.den = rate.den.saturating_mul(2);
        }
        rate
    }

    /// ffmpeg's spelling, for the `fps` filter.
    pub fn ffmpeg(self) -> String {
        format!("{}/{}", self.num, self.den)
    }
}

impl Rung {
    /// Peak rate the encoder may reach (VBV maximum), 7 % above average.
    pub fn max_kbps(&self) -> u32 {
        self.video_kbps + self.video_kbps * 7 / 100
    }

    /// VBV buffer: one and a half seconds at the average rate.
    pub fn buffer_kbits(&self) -> u32 {
        self.video_kbps * 3 / 2
    }

    /// Directory and stream name of the rung, unique within a ladder.
    pub fn name(&self) -> String {
        format!("{}p_{}k", self.short_side(), self.video_kbps)
    }

    pub fn short_side(&self) -> u32 {
        self.width.min(self.height)
    }
}

/// What the planner needs to know of the source video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceVideo {
    /// As displayed: rotation metadata already applied.
    pub width: u32,
    pub height: u32,
    /// Bits per second; `None` when neither stream nor container says.
    pub bitrate: Option<u64>,
    pub frame_rate: FrameRate,
}

/// The standard ladder: the H.264 ladder of Apple's HLS Authoring
/// Specification, as short side in lines and average video rate in kb/s,
/// highest first.
const STANDARD_RUNGS: [(u32, u32); 9] = [
    (1080, 7800),
    (1080, 6000),
    (720, 4500),
    (720, 3000),
    (540, 2000),
    (432, 1100),
    (432, 730),
    (360, 365),
    (234, 145),
];

/// Rungs this short or shorter run at most at 30 frames per second (the
/// authoring specification's rule); taller ones keep the source's rate, up
/// to [`MAX_FRAME_RATE`].
const LOW_RUNG_MAX_LINES: u32 = 432;
const LOW_RUNG_MAX_FRAME_RATE: u32 = 30;
const MAX_FRAME_RATE: u32 = 60;

/// The seed's lowest rung, added when half the source rate is above
/// [`SEED_LOW_RUNG_THRESHOLD_KBPS`].
const SEED_LOW_RUNG_KBPS: u32 = 200;
const SEED_LOW_RUNG_THRESHOLD_KBPS: u32 = 250;

/// Plans `ladder` for `source`, within what the encoder can do: a source
/// taller than the encoder allows is planned as if scaled down to it, and no
/// rung asks for more than its maximum rate.
pub fn plan_ladder(ladder: LadderName, source: SourceVideo, limits: EncoderLimits) -> Vec<Rung> {
    let source = fit_long_side(fit_short_side(source, limits.max_lines), limits.max_side);
    let mut rungs = match ladder {
        LadderName::Standard => plan_standard(source),
        LadderName::Seed => plan_seed(source),
    };
    if let Some(max_rate) = limits.max_frame_rate {
        for rung in &mut rungs {
            rung.frame_rate = rung.frame_rate.at_most(max_rate);
        }
    }
    if let Some(max_kbps) = limits.max_kbps {
        for rung in &mut rungs {
            rung.video_kbps = rung.video_kbps.min(max_kbps);
        }
        rungs.dedup_by(|lower, upper| {
            lower.video_kbps == upper.video_kbps && lower.height == upper.height
        });
    }
    rungs
}

fn fit_short_side(source: SourceVideo, max_lines: Option<u32>) -> SourceVideo {
    match max_lines {
        Some(max) if short_side(source) > max => {
            let (width, height) = scaled_to(source, max);
            SourceVideo {
                width,
                height,
                ..source
            }
        }
        _ => source,
    }
}

/// The source as if scaled down (keeping its shape) until neither side is
/// longer than `max_side`.
fn fit_long_side(source: SourceVideo, max_side: Option<u32>) -> SourceVideo {
    let long = source.width.max(source.height);
    match max_side {
        Some(max) if long > max => {
            let short = short_side(source);
            // The short side that brings the long one to `max`, rounded
            // down so that rounding never takes the long side past it.
            let lines =
                u32::try_from(u64::from(short) * u64::from(max) / u64::from(long)).unwrap_or(short);
            let (width, height) = scaled_to(source, lines & !1);
            SourceVideo {
                width: width.min(max),
                height: height.min(max),
                ..source
            }
        }
        _ => source,
    }
}

fn short_side(source: SourceVideo) -> u32 {
    source.width.min(source.height)
}

/// The rung's rate: the source's, capped for low rungs and overall.
fn rung_frame_rate(source: SourceVideo, lines: u32) -> FrameRate {
    let capped = source.frame_rate.at_most(MAX_FRAME_RATE);
    if lines <= LOW_RUNG_MAX_LINES {
        capped.at_most(LOW_RUNG_MAX_FRAME_RATE)
    } else {
        capped
    }
}

fn plan_standard(source: SourceVideo) -> Vec<Rung> {
    let cap = source_kbps(source);
    let mut rungs: Vec<Rung> = Vec::new();
    for (lines, table_kbps) in STANDARD_RUNGS {
        if lines > short_side(source) {
            continue;
        }
        let video_kbps = cap.map_or(table_kbps, |cap| table_kbps.min(cap));
        // A rung at the same rate as the one above it adds nothing: that
        // happens when the source's rate caps both.
        if rungs
            .last()
            .is_some_and(|above| above.video_kbps == video_kbps)
        {
            continue;
        }
        let (width, height) = scaled_to(source, lines);
        rungs.push(Rung {
            width,
            height,
            video_kbps,
            frame_rate: rung_frame_rate(source, lines),
        });
    }
    if rungs.is_empty() {
        let (_, smallest_kbps) = STANDARD_RUNGS[STANDARD_RUNGS.len() - 1];
        rungs.push(Rung {
            width: even(source.width),
            height: even(source.height),
            video_kbps: cap.map_or(smallest_kbps, |cap| smallest_kbps.min(cap)),
            frame_rate: rung_frame_rate(source, short_side(source)),
        });
    }
    rungs
}

/// The seed's rule: the source rate, half of it, and 200 kb/s when half the
/// source is above 250 kb/s, all at the source resolution.
fn plan_seed(source: SourceVideo) -> Vec<Rung> {
    let top_kbps = source_kbps(source).unwrap_or_else(|| nominal_kbps(short_side(source)));
    let half_kbps = top_kbps / 2;
    let at_source = |video_kbps| Rung {
        width: even(source.width),
        height: even(source.height),
        video_kbps,
        frame_rate: source.frame_rate.at_most(MAX_FRAME_RATE),
    };
    let mut rungs = vec![at_source(top_kbps)];
    if half_kbps > 0 {
        rungs.push(at_source(half_kbps));
    }
    if half_kbps > SEED_LOW_RUNG_THRESHOLD_KBPS {
        rungs.push(at_source(SEED_LOW_RUNG_KBPS));
    }
    rungs
}

fn source_kbps(source: SourceVideo) -> Option<u32> {
    source
        .bitrate
        .map(|bps| u32::try_from(bps / 1000).unwrap_or(u32::MAX).max(1))
}

/// The standard table's rate for the tallest rung that fits the source, for
/// a source whose rate nobody measured.
fn nominal_kbps(lines: u32) -> u32 {
    STANDARD_RUNGS
        .iter()
        .find(|(rung_lines, _)| *rung_lines <= lines)
        .map_or(STANDARD_RUNGS[STANDARD_RUNGS.len() - 1].1, |(_, kbps)| {
            *kbps
        })
}

/// The source scaled so its short side is `lines`: the aspect ratio kept,
/// both sides even.
fn scaled_to(source: SourceVideo, lines: u32) -> (u32, u32) {
    let (short, long) = if source.width <= source.height {
        (source.width, source.height)
    } else {
        (source.height, source.width)
    };
    let scaled_long =
        (u64::from(long) * u64::from(lines) + u64::from(short) / 2) / u64::from(short);
    let scaled_long = even(u32::try_from(scaled_long).unwrap_or(u32::MAX));
    let lines = even(lines);
    if source.width <= source.height {
        (lines, scaled_long)
    } else {
        (scaled_long, lines)
    }
}

fn even(value: u32) -> u32 {
    (value & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_ladder(ladder: LadderName, source: SourceVideo) -> Vec<Rung> {
        super::plan_ladder(ladder, source, EncoderLimits::default())
    }

    fn source(width: u32, height: u32, kbps: Option<u64>) -> SourceVideo {
        SourceVideo {
            width,
            height,
            bitrate: kbps.map(|k| k * 1000),
            frame_rate: FrameRate { num: 25, den: 1 },
        }
    }

    fn sizes(rungs: &[Rung]) -> Vec<(u32, u32, u32)> {
        rungs
            .iter()
            .map(|r| (r.width, r.height, r.video_kbps))
            .collect()
    }

    #[test]
    fn a_1080p_source_gets_apples_whole_table() {
        let rungs = plan_ladder(LadderName::Standard, source(1920, 1080, None));
        assert_eq!(
            sizes(&rungs),
            [
                (1920, 1080, 7800),
                (1920, 1080, 6000),
                (1280, 720, 4500),
                (1280, 720, 3000),
                (960, 540, 2000),
                (768, 432, 1100),
                (768, 432, 730),
                (640, 360, 365),
                (416, 234, 145),
            ]
        );
    }

    #[test]
    fn never_upscales() {
        let rungs = plan_ladder(LadderName::Standard, source(1280, 720, Some(10_000)));
        assert!(rungs.iter().all(|r| r.height <= 720 && r.width <= 1280));
        assert_eq!(sizes(&rungs[..1]), [(1280, 720, 4500)]);
        assert_eq!(rungs.len(), 7);
    }

    #[test]
    fn caps_at_the_source_bitrate_and_drops_rungs_that_add_nothing() {
        let rungs = plan_ladder(LadderName::Standard, source(1920, 1080, Some(1000)));
        assert!(rungs.iter().all(|r| r.video_kbps <= 1000));
        assert_eq!(
            sizes(&rungs),
            [
                (1920, 1080, 1000),
                (768, 432, 730),
                (640, 360, 365),
                (416, 234, 145)
            ]
        );
    }

    #[test]
    fn a_tiny_source_still_gets_one_rung_at_its_own_size() {
        let rungs = plan_ladder(LadderName::Standard, source(161, 121, Some(150)));
        assert_eq!(sizes(&rungs), [(160, 120, 145)]);
    }

    #[test]
    fn keeps_the_aspect_ratio_with_even_sides() {
        let rungs = plan_ladder(LadderName::Standard, source(640, 480, None));
        assert_eq!(
            sizes(&rungs),
            [
                (576, 432, 1100),
                (576, 432, 730),
                (480, 360, 365),
                (312, 234, 145)
            ]
        );
        let odd = plan_ladder(LadderName::Standard, source(853, 479, None));
        assert!(
            odd.iter().all(|r| r.width % 2 == 0 && r.height % 2 == 0),
            "{odd:?}"
        );
    }

    #[test]
    fn a_portrait_source_is_laddered_by_its_short_side() {
        let rungs = plan_ladder(LadderName::Standard, source(720, 1280, None));
        assert_eq!(sizes(&rungs[..1]), [(720, 1280, 4500)]);
        assert_eq!(sizes(&rungs[rungs.len() - 1..]), [(234, 416, 145)]);
        assert!(rungs.iter().all(|r| r.width < r.height));
        assert_eq!(rungs[0].name(), "720p_4500k");
    }

    #[test]
    fn low_rungs_run_at_most_30_frames_per_second() {
        let mut fast = source(1920, 1080, None);
        fast.frame_rate = FrameRate {
            num: 60000,
            den: 1001,
        };
        let rungs = plan_ladder(LadderName::Standard, fast);
        let rate = |height: u32| {
            rungs
                .iter()
                .find(|r| r.height == height)
                .map(|r| r.frame_rate.as_f64())
                .expect("rung")
        };
        assert!((rate(1080) - 59.94).abs() < 0.01);
        assert!((rate(540) - 59.94).abs() < 0.01);
        assert!((rate(432) - 29.97).abs() < 0.01);
        assert!((rate(234) - 29.97).abs() < 0.01);
        assert_eq!(
            FrameRate { num: 120, den: 1 }.at_most(MAX_FRAME_RATE),
            FrameRate { num: 120, den: 2 }
        );
    }

    #[test]
    fn frame_rates_parse_as_ffprobe_writes_them() {
        assert_eq!(
            FrameRate::parse("30000/1001"),
            Some(FrameRate {
                num: 30000,
                den: 1001
            })
        );
        assert_eq!(FrameRate::parse("0/0"), None);
        assert_eq!(FrameRate::parse("25"), None);
    }

    #[test]
    fn names_are_unique_within_a_ladder() {
        for ladder in LadderName::ALL {
            let rungs = plan_ladder(ladder, source(1920, 1080, Some(8000)));
            let mut names: Vec<String> = rungs.iter().map(Rung::name).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), rungs.len());
        }
    }

    #[test]
    fn the_pi_encoder_is_never_asked_for_more_than_1080p_or_20_mbps() {
        let pi = crate::pipeline::plan::codec::VideoEncoder::V4l2m2m.limits();
        let uhd = source(3840, 2160, Some(40_000));
        let standard = super::plan_ladder(LadderName::Standard, uhd, pi);
        assert!(standard.iter().all(|r| r.height <= 1080), "{standard:?}");
        let seed = super::plan_ladder(LadderName::Seed, uhd, pi);
        assert_eq!(sizes(&seed[..1]), [(1920, 1080, 20_000)]);
        assert!(
            seed.iter()
                .all(|r| r.video_kbps <= 20_000 && r.height == 1080),
            "{seed:?}"
        );
    }

    #[test]
    fn the_pi_encoder_gets_no_side_over_1920_and_no_rate_over_30() {
        let pi = crate::pipeline::plan::codec::VideoEncoder::V4l2m2m.limits();
        let awkward = [
            ("ultra-wide", 2560, 1080, 25),
            ("scope film", 3840, 1600, 24),
            ("tall phone clip", 1080, 2340, 30),
            ("1080p50", 1920, 1080, 50),
        ];
        for (what, width, height, fps) in awkward {
            let input = SourceVideo {
                frame_rate: FrameRate { num: fps, den: 1 },
                ..source(width, height, None)
            };
            for ladder in LadderName::ALL {
                let rungs = super::plan_ladder(ladder, input, pi);
                assert!(!rungs.is_empty(), "{what}");
                for rung in &rungs {
                    assert!(
                        rung.width <= 1920 && rung.height <= 1920,
                        "{what} {ladder:?}: {rung:?}"
                    );
                    assert!(rung.frame_rate.as_f64() <= 30.0, "{what}: {rung:?}");
                    assert_eq!(rung.width % 2 + rung.height % 2, 0, "{what}: {rung:?}");
                }
            }
        }
        // The shape is kept: a 2560x1080 source's top rung is 1920 wide.
        let wide = super::plan_ladder(LadderName::Seed, source(2560, 1080, None), pi);
        assert_eq!((wide[0].width, wide[0].height), (1920, 810));
        // 50 frames per second halve to 25, every kept frame a source frame.
        let fifty = SourceVideo {
            frame_rate: FrameRate { num: 50, den: 1 },
            ..source(1920, 1080, None)
        };
        let rungs = super::plan_ladder(LadderName::Standard, fifty, pi);
        assert_eq!(rungs[0].frame_rate, FrameRate { num: 50, den: 2 });
        // Other encoders keep the source's size and rate.
        let software = plan_ladder(LadderName::Seed, fifty);
        assert_eq!(software[0].frame_rate, FrameRate { num: 50, den: 1 });
        let wide = plan_ladder(LadderName::Seed, source(2560, 1080, None));
        assert_eq!((wide[0].width, wide[0].height), (2560, 1080));
    }

    #[test]
    fn a_4k_source_tops_out_at_the_tables_highest_rung() {
        let rungs = plan_ladder(LadderName::Standard, source(3840, 2160, None));
        assert_eq!(sizes(&rungs[..1]), [(1920, 1080, 7800)]);
    }

    #[test]
    fn seed_rule_is_reproduced() {
        let rungs = plan_ladder(LadderName::Seed, source(1280, 720, Some(3000)));
        let rates: Vec<u32> = rungs.iter().map(|r| r.video_kbps).collect();
        assert_eq!(rates, [3000, 1500, 200]);
        assert!(rungs.iter().all(|r| r.width == 1280 && r.height == 720));
    }

    #[test]
    fn seed_rule_skips_200k_when_half_the_source_is_low() {
        let rates: Vec<u32> = plan_ladder(LadderName::Seed, source(640, 360, Some(500)))
            .iter()
            .map(|r| r.video_kbps)
            .collect();
        assert_eq!(rates, [500, 250]);
    }

    #[test]
    fn seed_rule_without_a_measured_rate_uses_the_standard_rate_for_its_height() {
        let rates: Vec<u32> = plan_ladder(LadderName::Seed, source(1280, 720, None))
            .iter()
            .map(|r| r.video_kbps)
            .collect();
        assert_eq!(rates, [4500, 2250, 200]);
    }
}

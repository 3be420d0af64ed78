//! Plan: choose the bitrate/resolution rungs for a source.
//!
//! Rules for every ladder: never upscale, never exceed the source's bitrate,
//! always at least one rung, even dimensions (4:2:0 chroma needs them).

use hlsmux_protocol::LadderName;

use super::codec::EncoderLimits;

/// One output variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rung {
    pub width: u32,
    pub height: u32,
    pub video_kbps: u32,
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
        format!("{}p_{}k", self.height, self.video_kbps)
    }
}

/// What the planner needs to know of the source video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceVideo {
    pub width: u32,
    pub height: u32,
    /// Bits per second; `None` when neither stream nor container says.
    pub bitrate: Option<u64>,
}

/// The standard ladder's rungs: height and average video bitrate in kb/s.
const STANDARD_RUNGS: [(u32, u32); 5] = [
    (1080, 5000),
    (720, 2800),
    (480, 1400),
    (360, 800),
    (240, 400),
];

/// The seed's lowest rung, added when half the source rate is above
/// [`SEED_LOW_RUNG_THRESHOLD_KBPS`].
const SEED_LOW_RUNG_KBPS: u32 = 200;
const SEED_LOW_RUNG_THRESHOLD_KBPS: u32 = 250;

/// Plans `ladder` for `source`, within what the encoder can do: a source
/// taller than the encoder allows is planned as if scaled down to it, and no
/// rung asks for more than its maximum rate.
pub fn plan_ladder(ladder: LadderName, source: SourceVideo, limits: EncoderLimits) -> Vec<Rung> {
    let source = fit_height(source, limits.max_height);
    let mut rungs = match ladder {
        LadderName::Standard => plan_standard(source),
        LadderName::Seed => plan_seed(source),
    };
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

fn fit_height(source: SourceVideo, max_height: Option<u32>) -> SourceVideo {
    match max_height {
        Some(max) if source.height > max => SourceVideo {
            width: scaled_width(source, max),
            height: max,
            bitrate: source.bitrate,
        },
        _ => source,
    }
}

fn plan_standard(source: SourceVideo) -> Vec<Rung> {
    let cap = source_kbps(source);
    let mut rungs: Vec<Rung> = Vec::new();
    for (height, table_kbps) in STANDARD_RUNGS {
        if height > source.height {
            continue;
        }
        let video_kbps = cap.map_or(table_kbps, |cap| table_kbps.min(cap));
        // A smaller picture at the same rate as the rung above it adds
        // nothing: that happens when the source's rate caps both.
        if rungs
            .last()
            .is_some_and(|above| above.video_kbps == video_kbps)
        {
            continue;
        }
        rungs.push(Rung {
            width: scaled_width(source, height),
            height,
            video_kbps,
        });
    }
    if rungs.is_empty() {
        let (_, smallest_kbps) = STANDARD_RUNGS[STANDARD_RUNGS.len() - 1];
        rungs.push(Rung {
            width: even(source.width),
            height: even(source.height),
            video_kbps: cap.map_or(smallest_kbps, |cap| smallest_kbps.min(cap)),
        });
    }
    rungs
}

/// The seed's rule: the source rate, half of it, and 200 kb/s when half the
/// source is above 250 kb/s, all at the source resolution.
fn plan_seed(source: SourceVideo) -> Vec<Rung> {
    let top_kbps = source_kbps(source).unwrap_or_else(|| nominal_kbps(source.height));
    let half_kbps = top_kbps / 2;
    let at_source = |video_kbps| Rung {
        width: even(source.width),
        height: even(source.height),
        video_kbps,
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
fn nominal_kbps(height: u32) -> u32 {
    STANDARD_RUNGS
        .iter()
        .find(|(rung_height, _)| *rung_height <= height)
        .map_or(STANDARD_RUNGS[STANDARD_RUNGS.len() - 1].1, |(_, kbps)| {
            *kbps
        })
}

fn scaled_width(source: SourceVideo, height: u32) -> u32 {
    let width = (u64::from(source.width) * u64::from(height) + u64::from(source.height) / 2)
        / u64::from(source.height);
    even(u32::try_from(width).unwrap_or(u32::MAX))
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
        }
    }

    #[test]
    fn never_upscales() {
        let rungs = plan_ladder(LadderName::Standard, source(1280, 720, Some(10_000)));
        assert!(rungs.iter().all(|r| r.height <= 720 && r.width <= 1280));
        assert_eq!(
            rungs[0],
            Rung {
                width: 1280,
                height: 720,
                video_kbps: 2800
            }
        );
        assert_eq!(rungs.len(), 4);
    }

    #[test]
    fn caps_at_the_source_bitrate_and_drops_rungs_that_add_nothing() {
        let rungs = plan_ladder(LadderName::Standard, source(1920, 1080, Some(1000)));
        assert!(rungs.iter().all(|r| r.video_kbps <= 1000));
        let heights: Vec<u32> = rungs.iter().map(|r| r.height).collect();
        assert_eq!(heights, [1080, 360, 240]);
        assert_eq!(rungs[0].video_kbps, 1000);
    }

    #[test]
    fn a_tiny_source_still_gets_one_rung_at_its_own_size() {
        let rungs = plan_ladder(LadderName::Standard, source(161, 121, Some(150)));
        assert_eq!(
            rungs,
            [Rung {
                width: 160,
                height: 120,
                video_kbps: 150
            }]
        );
    }

    #[test]
    fn keeps_the_aspect_ratio_with_even_widths() {
        let rungs = plan_ladder(LadderName::Standard, source(640, 360, None));
        assert_eq!(
            rungs[1],
            Rung {
                width: 426,
                height: 240,
                video_kbps: 400
            }
        );
        let portrait = plan_ladder(LadderName::Standard, source(720, 1280, None));
        assert!(
            portrait
                .iter()
                .all(|r| r.width % 2 == 0 && r.height % 2 == 0)
        );
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
        let pi = super::super::codec::VideoEncoder::V4l2m2m.limits();
        let uhd = source(3840, 2160, Some(40_000));
        let standard = super::plan_ladder(LadderName::Standard, uhd, pi);
        assert!(standard.iter().all(|r| r.height <= 1080), "{standard:?}");
        let seed = super::plan_ladder(LadderName::Seed, uhd, pi);
        assert_eq!(
            seed[0],
            Rung {
                width: 1920,
                height: 1080,
                video_kbps: 20_000
            }
        );
        assert!(
            seed.iter()
                .all(|r| r.video_kbps <= 20_000 && r.height == 1080),
            "{seed:?}"
        );
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
        assert_eq!(rates, [2800, 1400, 200]);
    }
}

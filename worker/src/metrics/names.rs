//! The worker's metric names, defined once: the registry, the tests and the
//! dashboards all use these.

pub const WORKER_INFO: &str = "hlsmux_worker_info";
pub const WORKER_STATE: &str = "hlsmux_worker_state";
pub const ENCODER_INFO: &str = "hlsmux_encoder_info";
pub const ENCODE_FPS: &str = "hlsmux_encode_frames_per_second";
pub const ENCODE_SPEED: &str = "hlsmux_encode_speed_ratio";
pub const JOBS_FINISHED: &str = "hlsmux_jobs_finished_total";
pub const JOB_DURATION: &str = "hlsmux_job_duration_seconds";
pub const JOB_MEDIA_DURATION: &str = "hlsmux_job_media_duration_seconds";
pub const SOC_TEMPERATURE: &str = "hlsmux_soc_temperature_celsius";
pub const SOC_THROTTLING: &str = "hlsmux_soc_throttling";
pub const STORAGE_HEALTHY: &str = "hlsmux_storage_healthy";
pub const STORAGE_MOUNTED: &str = "hlsmux_storage_mounted";
pub const STORAGE_FREE_BYTES: &str = "hlsmux_storage_free_bytes";
pub const STORAGE_PROBE_DURATION: &str = "hlsmux_storage_probe_duration_seconds";
pub const STORAGE_PROBE_FAILURES: &str = "hlsmux_storage_probe_failures_total";
pub const STORAGE_REMOUNTS: &str = "hlsmux_storage_remount_attempts_total";
pub const BROKER_CONNECTED: &str = "hlsmux_broker_connected";
pub const BROKER_FEATURE_UP: &str = "hlsmux_broker_feature_up";
pub const BROKER_RECONNECTS: &str = "hlsmux_broker_reconnects_total";
pub const ENCODE_STALLS: &str = "hlsmux_encode_stalls_total";
pub const OUTCOMES_REPUBLISHED: &str = "hlsmux_outcomes_republished_total";
pub const QUARANTINES: &str = "hlsmux_worker_quarantines_total";
pub const CHUNKS_ENCODED: &str = "hlsmux_chunks_encoded_total";
pub const CHUNKS_DROPPED: &str = "hlsmux_chunks_dropped_total";
pub const CHUNK_WAIT: &str = "hlsmux_chunk_wait_seconds";

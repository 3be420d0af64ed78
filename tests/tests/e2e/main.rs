//! The end-to-end tests, one module per property, linked into one test
//! binary: every test binary links the whole worker, CLI and broker client,
//! so one binary instead of forty keeps the build's disk use and link time
//! small. Run one property with `cargo test -p hlsmux-tests --test e2e
//! <module>::`.
//!
//! Two suites stay binaries of their own: `traces_cross_the_queue` installs
//! the process-wide tracing subscriber, and `broker_wide_faults` restarts or
//! reconfigures the shared broker and runs alone (`scripts/test`).

mod amqps_connections_work;
mod bad_inputs_fail_with_reason;
mod broker_connection_loss;
mod cancel_stops_jobs;
mod cli_refuses_bad_requests;
mod cli_takes_rotated_and_broadcast_inputs;
mod config_layers;
mod credentials_never_leak;
mod dashboards_query_live_prometheus;
mod deploy_definitions_run_the_pool;
mod deploy_renders_validated_files;
mod drain_lock;
mod encoder_selection;
mod encrypted_outputs_decrypt;
mod forged_dead_letter_notices_change_nothing;
mod gateway_jobs_api;
mod gateway_under_load;
mod gateway_uploads;
mod gateway_web_page;
mod gateway_webhooks;
mod hardware_decoding_falls_back;
mod hostile_inputs_are_refused;
mod job_ids_name_one_request;
mod jobs_route_by_muxer;
mod layers_import_downward;
mod log_format;
mod metrics_endpoint;
mod names_are_never_templates_or_markup;
mod out_of_memory_kills_are_named;
mod outputs_conform;
mod oversized_messages_cost_no_memory;
mod pi_check_holds_the_hardware_to_the_plan;
mod plays_in_a_browser;
mod poison_job_reaches_dead_letters;
mod pool_front_door;
mod prefetch_one;
mod rate_control_modes;
mod shutdown_requeues_job_in_hand;
mod sick_worker_quarantines_itself;
mod side_features_never_stop_jobs;
mod soak_with_crashing_workers;
mod split_across_the_pool;
mod split_output_matches_a_whole_encode;
mod split_respects_drain_and_quarantine;
mod split_survives_faults;
mod stalled_encode_is_requeued;
mod storage_full_or_read_only;
mod storage_health;
mod submitted_video_becomes_hls;
mod tidy_originals;
mod worker_killed_mid_encode;
mod worker_plan_shows_what_a_pi_would_run;

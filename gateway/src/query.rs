//! Query strings: decoded pairs, and `GET /v1/jobs`'s filters.

use hlsmux_protocol::MuxerId;

use crate::api_error::ApiError;

/// A query's pairs, percent-decoded (`+` is a space, so a timestamp's
/// offset comes as `%2B`).
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(&text.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// `GET /v1/jobs`'s filters: `state`, `muxer`, and `since` (RFC 3339:
/// the jobs with an event at or after it, for a client polling for what
/// changed).
#[derive(Default)]
pub struct Query {
    pub state: Option<String>,
    pub muxer: Option<MuxerId>,
    pub since: Option<time::OffsetDateTime>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut parsed = Self::default();
        for (key, value) in query_pairs(query) {
            let value = value.as_str();
            match key.as_str() {
                "state" => {
                    if !["queued", "running", "requeued", "done", "failed"].contains(&value) {
                        return Err(ApiError::bad_request(
                            "bad_query",
                            format!(
                                "state {value:?}: use queued, running, requeued, done or failed"
                            ),
                        ));
                    }
                    parsed.state = Some(value.to_owned());
                }
                "muxer" => {
                    let muxer = value
                        .parse::<u16>()
                        .ok()
                        .and_then(|id| MuxerId::new(id).ok())
                        .ok_or_else(|| {
                            ApiError::bad_request(
                                "bad_query",
                                format!("muxer {value:?} is not a muxer ID"),
                            )
                        })?;
                    parsed.muxer = Some(muxer);
                }
                "since" => {
                    let since = time::OffsetDateTime::parse(
                        value,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .map_err(|_| {
                        ApiError::bad_request(
                            "bad_query",
                            format!(
                                "since {value:?} is not an RFC 3339 time \
                                 (like 2026-12-01T10:00:00Z)"
                            ),
                        )
                    })?;
                    parsed.since = Some(since);
                }
                other => {
                    return Err(ApiError::bad_request(
                        "bad_query",
                        format!("unknown filter {other:?}: use state, muxer and since"),
                    ));
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::Query;

    #[test]
    fn since_takes_an_encoded_offset_and_refuses_other_text() {
        let query = Query::parse(Some("since=2026-12-01T10%3A00%3A00%2B01%3A00&state=done"))
            .unwrap_or_else(|error| panic!("{}", error.message));
        let since = query.since.expect("since");
        assert_eq!(since.unix_timestamp(), 1_796_115_600);
        assert_eq!(query.state.as_deref(), Some("done"));
        for bad in [
            "since=yesterday",
            "since=2026-12-01",
            "state=lost",
            "muxer=0",
            "page=2",
        ] {
            let Err(error) = Query::parse(Some(bad)) else {
                panic!("{bad} was taken")
            };
            assert_eq!(error.code, "bad_query", "{bad}");
        }
    }
}

//! Query and JSON extractors whose rejections are our `{"error":{"code","message"}}` body (400)
//! instead of axum's plain-text ones, plus the opaque cursors of paged lists.
use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `Query<T>` with a JSON error body naming the bad parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_error(e)),
        }
    }
}

fn query_error(e: QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid query string: {}", e.body_text()))
}

/// `Json<T>` with a JSON error body: 400 for a body that is not the expected JSON (axum's 415 and
/// 422 become 400 too, one status for "fix your request").
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(json_error(e)),
        }
    }
}

fn json_error(e: JsonRejection) -> ApiError {
    ApiError::BadRequest(format!("invalid JSON body: {}", e.body_text()))
}

/// An opaque cursor: base64url of the keyset's JSON. Clients pass back what they were given.
pub fn encode_cursor<T: Serialize>(keyset: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(keyset).unwrap_or_default())
}

pub fn decode_cursor<T: DeserializeOwned>(cursor: &str) -> Result<T, ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "invalid cursor: pass back the next_cursor of the previous page unchanged".into(),
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim_end_matches('='))
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct K {
        n: String,
        i: i64,
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_bad_request() {
        let k = K {
            n: "ws-01 ü".into(),
            i: 42,
        };
        let c = encode_cursor(&k);
        assert!(
            c.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'),
            "{c}"
        );
        assert_eq!(decode_cursor::<K>(&c).unwrap(), k);
        let e = decode_cursor::<K>("not a cursor!").unwrap_err();
        assert_eq!(e.code(), "bad_request");
        let e = decode_cursor::<K>(&encode_cursor(&42)).unwrap_err();
        assert_eq!(e.code(), "bad_request");
    }
}

//! Who may call `POST /predict`: the mode the deployment chose, and the caller's identity as
//! API Gateway's authorizer put it in the event.
//!
//! API Gateway answers unsigned or badly signed calls before the function runs. The handler
//! checks again (defence in depth): a route someone adds without an authorizer must not open
//! the classifier, or the S3 buckets it may read, to anyone who finds the URL. So in `iam` and
//! `jwt` modes an event without the authorizer's identity is answered 401 `unauthenticated`,
//! and on Lambda a missing or unknown `XRAY_AUTH` stops start-up (fail closed:
//! [`crate::config::AuthMode`]).

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// Who called, as the authorizer established it: what the request's log line records for
/// audit. Nothing else of a token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A SigV4-signed call: the principal's ARN.
    Iam {
        /// `arn:aws:iam::…` or `arn:aws:sts::…:assumed-role/…`.
        arn: String,
    },
    /// A call with a JWT the authorizer accepted: its subject and issuer.
    Jwt {
        /// The token's `sub`.
        sub: String,
        /// The token's `iss`.
        issuer: String,
    },
}

impl Caller {
    /// The identity API Gateway's authorizer put in the event, if any.
    pub fn of(req: &Request) -> Option<Caller> {
        let RequestContext::ApiGatewayV2(ctx) = req.request_context_ref()? else {
            return None;
        };
        let authorizer = ctx.authorizer.as_ref()?;
        if let Some(arn) = authorizer
            .iam
            .as_ref()
            .and_then(|iam| iam.user_arn.clone())
            .filter(|a| !a.is_empty())
        {
            return Some(Caller::Iam { arn });
        }
        let claims = &authorizer.jwt.as_ref()?.claims;
        let sub = claims.get("sub").filter(|s| !s.is_empty())?;
        Some(Caller::Jwt {
            sub: sub.clone(),
            issuer: claims.get("iss").cloned().unwrap_or_default(),
        })
    }

    /// `iam:<arn>` or `jwt:<issuer>#<sub>`, for the log line.
    pub fn audit(&self) -> String {
        match self {
            Caller::Iam { arn } => format!("iam:{arn}"),
            Caller::Jwt { sub, issuer } => format!("jwt:{issuer}#{sub}"),
        }
    }
}

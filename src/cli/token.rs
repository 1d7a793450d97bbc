//! `pubsub token`: prints a token signed with the server's HMAC secret, for development and
//! tests. Production tokens come from an identity provider.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::auth::{TokenRequest, issue_hmac};
use crate::config::AuthFlags;

/// Print a JWT signed with the server's HMAC secret (--auth-hmac-secret, its file or
/// PUBSUB_AUTH_HMAC_SECRET), e.g. `pubsub token --sub alice --publish 'chat.*' --subscribe '*'
/// --ttl 1h`. Issuer and audience follow --auth-issuer and --auth-audience, as the server
/// checks them.
#[derive(Debug, Parser)]
#[command(name = "pubsub token", version)]
pub struct TokenArgs {
    /// Who the token is for (`sub`).
    #[arg(long)]
    pub sub: String,

    /// A topic pattern the holder may publish to: a name, a prefix ending in `*`, or `*`.
    /// Repeat for more.
    #[arg(long, value_name = "PATTERN")]
    pub publish: Vec<String>,

    /// A topic pattern the holder may subscribe to and read history of. Repeat for more.
    #[arg(long, value_name = "PATTERN")]
    pub subscribe: Vec<String>,

    /// Topic management (create, delete, list), /stats and /metrics.
    #[arg(long)]
    pub admin: bool,

    /// How long the token is valid: seconds, or a number with s, m, h or d.
    #[arg(long, default_value = "1h", value_parser = ttl)]
    pub ttl: Duration,

    #[command(flatten)]
    pub auth: AuthFlags,
}

/// `90`, `90s`, `15m`, `1h`, `7d`.
fn ttl(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like 90s, 15m, 1h or 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unit '{unit}' is not one of s, m, h, d")),
    };
    match n.checked_mul(seconds) {
        Some(0) => Err("must be above 0".to_owned()),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Err("too long".to_owned()),
    }
}

/// Runs `pubsub token ARGS` (`args` starts with the program name, then `token`).
pub fn run(args: Vec<OsString>) -> ExitCode {
    let args = TokenArgs::try_parse_from(args.into_iter().skip(1)).unwrap_or_else(|e| e.exit());
    match token(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn token(args: &TokenArgs) -> Result<String, String> {
    let Some(secret) = args.auth.hmac_secret()? else {
        return Err("no secret to sign with: give --auth-hmac-secret or \
                    --auth-hmac-secret-file (or set PUBSUB_AUTH_HMAC_SECRET), the same as the \
                    server's"
            .to_owned());
    };
    issue_hmac(
        &secret,
        &TokenRequest {
            sub: args.sub.clone(),
            publish: args.publish.clone(),
            subscribe: args.subscribe.clone(),
            admin: args.admin,
            ttl: args.ttl,
            issuer: args.auth.auth_issuer.clone(),
            audience: args.auth.auth_audience.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units() {
        assert_eq!(ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(ttl("7d"), Ok(Duration::from_secs(604_800)));
        for bad in ["", "h", "0", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert!(ttl(bad).is_err(), "{bad}");
        }
    }
}

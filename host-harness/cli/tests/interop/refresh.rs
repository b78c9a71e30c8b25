//! Case 4: the access token expires at the server, the next decoration refreshes, the rotated
//! refresh token is the one stored, and the server refuses the one it replaced.

use std::thread::sleep;
use std::time::Duration;

use oauth2_runtime::{CallError, OauthError, TokenStep};

use crate::host::{self, Host, plugin};
use crate::server::{Kind, Server, Settings, WEB_CLIENT, header};

/// Short enough to wait out, long enough to use a token right after it was issued.
const ACCESS_TOKEN_TTL: u64 = 2;

fn rotation(kind: Kind) {
    let server = Server::with(
        kind,
        Settings {
            access_token_ttl: ACCESS_TOKEN_TTL,
            ..Settings::default()
        },
    );
    let host = Host::new(&server);
    let config = host::config(&server.connection("authorization_code", WEB_CLIENT));
    host.authorize(&server, &config);
    let first = host.token();
    assert_eq!(host.get(&config, &server.api_url()).status, 200);

    // Expired at the server, not only by our clock: the old token is refused as it is.
    sleep(Duration::from_secs(ACCESS_TOKEN_TTL) + Duration::from_millis(500));
    let mut stale = host::get(&server.api_url());
    let bearer = format!("Bearer {}", first["access_token"].as_str().unwrap());
    stale.headers.push(header("Authorization", &bearer));
    assert_eq!(
        host.send(&stale).status,
        401,
        "the access token has expired"
    );

    assert_eq!(
        host.get(&config, &server.api_url()).status,
        200,
        "refreshed"
    );
    let second = host.token();
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(
        second["refresh_token"], first["refresh_token"],
        "rotated and stored"
    );

    // The stored refresh token is live: forgetting the access token makes the next decoration
    // refresh with it.
    plugin()
        .forget_token(&host.services, &config, None)
        .unwrap();
    assert_eq!(
        host.get(&config, &server.api_url()).status,
        200,
        "refreshed again"
    );
    assert_ne!(host.token()["refresh_token"], second["refresh_token"]);

    // The one it replaced is dead: replayed as our client would send it, the server refuses it.
    let old = first["refresh_token"].as_str().unwrap().to_owned();
    let replay = plugin()
        .build_token_request(&host.services, &config, &TokenStep::Refresh(old))
        .unwrap();
    let response = host.send(&replay);
    assert_eq!(
        response.status,
        400,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(host::json(&response)["error"], "invalid_grant");

    plugin()
        .forget_token(&host.services, &config, None)
        .unwrap();
    let next = plugin().decorate_request(&host.services, &config, &host::get(&server.api_url()));
    match kind {
        // Authlib revokes only the replayed token: the rotated one still refreshes.
        Kind::Authlib => assert!(next.is_ok(), "{:?}", next.err()),
        // oidc-provider treats the replay as theft and revokes the whole grant (its refresh
        // token included): our client then asks for a new authorization.
        Kind::OidcProvider => match next {
            Err(CallError::OAuth(OauthError::AuthorizationRequired(reason))) => {
                assert!(
                    reason.contains("invalid_grant") && reason.contains("authorize again"),
                    "{reason}"
                );
            }
            other => panic!("expected authorization-required, got {other:?}"),
        },
    }
}
on_both_servers!(rotation);

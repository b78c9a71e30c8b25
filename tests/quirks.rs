//! Token responses as real providers send them, each vector naming where it was taken from: read
//! by the component inside wasmtime, and by the native build of the same code, with the same
//! result.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::{Host, START, plugin};
use oauth2_plugin::config as native;
use oauth2_plugin::error::Error as NativeError;
use oauth2_plugin::{http as native_http, token_response};
use oauth2_runtime::{
    CallError, ConnectionConfig, GrantType, HttpRequest, HttpResponse, OauthError, Pair,
    ResponseFormat, ScopeSeparator, TimeUnit,
};

#[derive(Clone, Copy, Debug)]
enum Unit {
    Seconds,
    Milliseconds,
}

#[derive(Clone, Copy, Debug)]
enum Sep {
    Space,
    Comma,
}

/// The connection's `response_format` for a vector.
#[derive(Clone, Copy, Debug)]
struct Format {
    token_path: &'static str,
    unit: Unit,
    scopes: Sep,
}

impl Format {
    const STANDARD: Format = Format {
        token_path: "",
        unit: Unit::Seconds,
        scopes: Sep::Space,
    };
    const COMMA_SCOPES: Format = Format {
        scopes: Sep::Comma,
        ..Format::STANDARD
    };
    const MILLIS: Format = Format {
        unit: Unit::Milliseconds,
        ..Format::STANDARD
    };
}

/// The token a vector must give. `expires_in` is relative to the time the response is read.
#[derive(Debug)]
struct Tok {
    access_token: &'static str,
    token_type: &'static str,
    expires_in: Option<u64>,
    refresh_token: Option<&'static str>,
    scope: Option<&'static str>,
    /// Extra fields that must be present with these values (others may be there too).
    extra: &'static [(&'static str, &'static str)],
}

#[derive(Debug)]
enum Expect {
    Token(Tok),
    Provider {
        status: u16,
        code: &'static str,
        description: Option<&'static str>,
    },
    Malformed {
        status: u16,
    },
}

struct Case {
    name: &'static str,
    source: &'static str,
    format: Format,
    status: u16,
    content_type: Option<&'static str>,
    body: &'static str,
    expect: Expect,
}

// Token values are shortened fakes; field names, JSON types, statuses and content types follow
// the source. Where a source describes a response without showing all of it, the body is built
// from its description. `expires_in` is relative to START (1_800_000_000), the time of reading.
const CASES: &[Case] = &[
    // ---- GitHub
    Case {
        name: "GitHub OAuth app: form-encoded body when Accept is not JSON (scope kept verbatim)",
        source: "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
        body: "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer",
        expect: Expect::Token(Tok {
            access_token: "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            token_type: "bearer",
            expires_in: None,
            refresh_token: None,
            scope: Some("repo,gist"),
            extra: &[],
        }),
    },
    Case {
        name: "GitHub OAuth app: JSON body, comma-separated scope split with COMMA_SCOPES",
        source: "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps",
        format: Format::COMMA_SCOPES,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"gho_16C7e42F292c6912E7710c838347Ae178B4a","scope":"repo,gist","token_type":"bearer"}"#,
        expect: Expect::Token(Tok {
            access_token: "gho_16C7e42F292c6912E7710c838347Ae178B4a",
            token_type: "bearer",
            expires_in: None,
            refresh_token: None,
            scope: Some("repo gist"),
            extra: &[],
        }),
    },
    Case {
        name: "GitHub App expiring user token: form-encoded, expires_in as form string, empty scope",
        source: "https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-user-access-token-for-a-github-app",
        format: Format::COMMA_SCOPES,
        status: 200,
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
        body: "access_token=ghu_16C7e42F292c6912E7710c838347Ae178B4a&expires_in=28800&refresh_token=ghr_1B4a2e77838347a7E420ce178F2E7c6912E1&refresh_token_expires_in=15811200&scope=&token_type=bearer",
        expect: Expect::Token(Tok {
            access_token: "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
            token_type: "bearer",
            expires_in: Some(28800),
            refresh_token: Some("ghr_1B4a2e77838347a7E420ce178F2E7c6912E1"),
            scope: None,
            extra: &[("refresh_token_expires_in", "15811200")],
        }),
    },
    Case {
        name: "GitHub: bad_verification_code error in an HTTP 200 JSON body",
        source: "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "bad_verification_code",
            description: Some("The code passed is incorrect or expired."),
        },
    },
    Case {
        name: "GitHub: incorrect_client_credentials in an HTTP 200 JSON body",
        source: "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"incorrect_client_credentials","error_description":"The client_id and/or client_secret passed are incorrect.","error_uri":"/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "incorrect_client_credentials",
            description: Some("The client_id and/or client_secret passed are incorrect."),
        },
    },
    Case {
        name: "GitHub: redirect_uri_mismatch as a form-encoded HTTP 200 body (no Accept header)",
        source: "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
        body: "error=redirect_uri_mismatch&error_description=The+redirect_uri+MUST+match+the+registered+callback+URL+for+this+application.&error_uri=https%3A%2F%2Fdocs.github.com%2Fapps%2Fmanaging-oauth-apps%2Ftroubleshooting-authorization-request-errors%2F%23redirect-uri-mismatch2",
        expect: Expect::Provider {
            status: 200,
            code: "redirect_uri_mismatch",
            description: Some(
                "The redirect_uri MUST match the registered callback URL for this application.",
            ),
        },
    },
    Case {
        name: "GitHub App refresh: bad_refresh_token in an HTTP 200 JSON body",
        source: "https://github.com/lelylan/simple-oauth2/issues/459",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}"#,
        expect: Expect::Provider {
            status: 200,
            code: "bad_refresh_token",
            description: Some("The refresh token passed is incorrect or expired."),
        },
    },
    Case {
        name: "GitHub device flow: authorization_pending in an HTTP 200 JSON body",
        source: "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"authorization_pending","error_description":"The authorization request is still pending.","error_uri":"https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "authorization_pending",
            description: Some("The authorization request is still pending."),
        },
    },
    // ---- Slack
    Case {
        name: "Slack oauth.v2.access: bot token_type, comma scopes, nested team/enterprise/authed_user kept as JSON",
        source: "https://docs.slack.dev/reference/methods/oauth.v2.access",
        format: Format::COMMA_SCOPES,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":true,"access_token":"xoxb-17653672481-19874698323-pdFZKVeT","token_type":"bot","scope":"commands,incoming-webhook","bot_user_id":"U0KRQLJ9H","app_id":"A0KRD7HC3","team":{"name":"Slack Softball Team","id":"T9TK3CUKW"},"enterprise":{"name":"slack-sports","id":"E12345678"},"authed_user":{"id":"U1234","scope":"chat:write","access_token":"xoxp-1234","token_type":"user"}}"#,
        expect: Expect::Token(Tok {
            access_token: "xoxb-17653672481-19874698323-pdFZKVeT",
            token_type: "bot",
            expires_in: None,
            refresh_token: None,
            scope: Some("commands incoming-webhook"),
            extra: &[
                ("app_id", "A0KRD7HC3"),
                (
                    "authed_user",
                    "{\"access_token\":\"xoxp-1234\",\"id\":\"U1234\",\"scope\":\"chat:write\",\"token_type\":\"user\"}",
                ),
                ("bot_user_id", "U0KRQLJ9H"),
                (
                    "enterprise",
                    "{\"id\":\"E12345678\",\"name\":\"slack-sports\"}",
                ),
                ("ok", "true"),
                (
                    "team",
                    "{\"id\":\"T9TK3CUKW\",\"name\":\"Slack Softball Team\"}",
                ),
            ],
        }),
    },
    Case {
        name: "Slack oauth.v2.access user-scopes-only install: token nested at authed_user",
        source: "https://docs.slack.dev/reference/methods/oauth.v2.access",
        format: Format {
            token_path: "authed_user",
            unit: Unit::Seconds,
            scopes: Sep::Comma,
        },
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":true,"app_id":"A0KRD7HC3","authed_user":{"id":"U1234","scope":"chat:write,channels:history","access_token":"xoxp-1234","token_type":"user"},"team":{"id":"T9TK3CUKW"},"enterprise":null,"is_enterprise_install":false}"#,
        expect: Expect::Token(Tok {
            access_token: "xoxp-1234",
            token_type: "user",
            expires_in: None,
            refresh_token: None,
            scope: Some("chat:write channels:history"),
            extra: &[
                ("app_id", "A0KRD7HC3"),
                ("enterprise", "null"),
                ("id", "U1234"),
                ("is_enterprise_install", "false"),
                ("ok", "true"),
                ("team", "{\"id\":\"T9TK3CUKW\"}"),
            ],
        }),
    },
    Case {
        name: "Slack token rotation: bot token with expires_in and xoxe refresh token",
        source: "https://docs.slack.dev/authentication/using-token-rotation",
        format: Format::COMMA_SCOPES,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":true,"app_id":"A0KRD7HC3","access_token":"xoxe.xoxb-1-MS0yLTIy","expires_in":43200,"refresh_token":"xoxe-1-My0xLTIy","token_type":"bot","scope":"commands,chat:write","bot_user_id":"U0KRQLJ9H","team":{"id":"T9TK3CUKW","name":"Slack Softball Team"},"enterprise":null,"is_enterprise_install":false}"#,
        expect: Expect::Token(Tok {
            access_token: "xoxe.xoxb-1-MS0yLTIy",
            token_type: "bot",
            expires_in: Some(43200),
            refresh_token: Some("xoxe-1-My0xLTIy"),
            scope: Some("commands chat:write"),
            extra: &[
                ("bot_user_id", "U0KRQLJ9H"),
                ("enterprise", "null"),
                ("is_enterprise_install", "false"),
            ],
        }),
    },
    Case {
        name: "Slack user token refresh: answered at the top level though token_path is authed_user",
        source: "https://api.slack.com/authentication/rotation",
        format: Format {
            token_path: "authed_user",
            unit: Unit::Seconds,
            scopes: Sep::Comma,
        },
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":true,"access_token":"xoxe.xoxp-1-Mi0yLTM0","token_type":"user","expires_in":43200,"refresh_token":"xoxe-1-My0xLTM1","scope":"search:read,chat:write","team":{"id":"T9TK3CUKW"}}"#,
        expect: Expect::Token(Tok {
            access_token: "xoxe.xoxp-1-Mi0yLTM0",
            token_type: "user",
            expires_in: Some(43200),
            refresh_token: Some("xoxe-1-My0xLTM1"),
            scope: Some("search:read chat:write"),
            extra: &[("ok", "true"), ("team", "{\"id\":\"T9TK3CUKW\"}")],
        }),
    },
    Case {
        name: "Slack bot-only install read with token_path authed_user: no user token there",
        source: "https://api.slack.com/methods/oauth.v2.access",
        format: Format {
            token_path: "authed_user",
            unit: Unit::Seconds,
            scopes: Sep::Comma,
        },
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":true,"access_token":"xoxb-17653672481","token_type":"bot","scope":"commands","authed_user":{"id":"U1234"}}"#,
        expect: Expect::Malformed { status: 200 },
    },
    Case {
        name: "Slack legacy oauth.access: no token_type, null enterprise_id kept as JSON null",
        source: "https://docs.slack.dev/reference/methods/oauth.access/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"xoxp-23984754863-2348975623103","scope":"groups:write","team_name":"Wyld Stallyns LLC","team_id":"TXXXXXXXXX","enterprise_id":null}"#,
        expect: Expect::Token(Tok {
            access_token: "xoxp-23984754863-2348975623103",
            token_type: "Bearer",
            expires_in: None,
            refresh_token: None,
            scope: Some("groups:write"),
            extra: &[
                ("enterprise_id", "null"),
                ("team_id", "TXXXXXXXXX"),
                ("team_name", "Wyld Stallyns LLC"),
            ],
        }),
    },
    Case {
        name: "Slack: {\"ok\":false,\"error\":\"invalid_code\"} in an HTTP 200 body",
        source: "https://docs.slack.dev/reference/methods/oauth.v2.access",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":false,"error":"invalid_code"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "invalid_code",
            description: None,
        },
    },
    Case {
        name: "Slack: {\"ok\":false,\"error\":\"bad_client_secret\"} in an HTTP 200 body",
        source: "https://docs.slack.dev/reference/methods/oauth.v2.access",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":false,"error":"bad_client_secret"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "bad_client_secret",
            description: None,
        },
    },
    Case {
        name: "Slack: {\"ok\":false,\"error\":\"invalid_client_id\"} in an HTTP 200 body",
        source: "https://docs.slack.dev/reference/methods/oauth.v2.access",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":false,"error":"invalid_client_id"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "invalid_client_id",
            description: None,
        },
    },
    Case {
        name: "Slack: {\"ok\":false,\"error\":\"bad_redirect_uri\"} in an HTTP 200 body",
        source: "https://docs.slack.dev/reference/methods/oauth.v2.access",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"ok":false,"error":"bad_redirect_uri"}"#,
        expect: Expect::Provider {
            status: 200,
            code: "bad_redirect_uri",
            description: None,
        },
    },
    // ---- Salesforce
    Case {
        name: "Salesforce web server flow: instance_url, id, issued_at (ms string), signature kept",
        source: "https://help.salesforce.com/apex/HTViewHelpDoc?id=xcloud.remoteaccess_oauth_web_server_flow_ca.htm",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json;charset=UTF-8"),
        body: r#"{"access_token":"00Dxx0000001gPL!AR8AQJXg5oj8jXSg","signature":"ph9BnEb2T2ffsZ5KE3WArQu0lUOhFd9SqMxRBCPDIuo=","scope":"refresh_token id api","instance_url":"https://yourInstance.salesforce.com","id":"https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS","token_type":"Bearer","issued_at":"1278448101416","refresh_token":"5Aep8614iLM.Dq661ePDmPEgaAW9"}"#,
        expect: Expect::Token(Tok {
            access_token: "00Dxx0000001gPL!AR8AQJXg5oj8jXSg",
            token_type: "Bearer",
            expires_in: None,
            refresh_token: Some("5Aep8614iLM.Dq661ePDmPEgaAW9"),
            scope: Some("refresh_token id api"),
            extra: &[
                (
                    "id",
                    "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SwiUAAS",
                ),
                ("instance_url", "https://yourInstance.salesforce.com"),
                ("issued_at", "1278448101416"),
                ("signature", "ph9BnEb2T2ffsZ5KE3WArQu0lUOhFd9SqMxRBCPDIuo="),
            ],
        }),
    },
    Case {
        name: "Salesforce username-password flow sample without token_type",
        source: "https://gist.github.com/dieffrei/8d95709f6d9f8dc93a7d19faaa5cd2ec",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"id":"https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P","issued_at":"1278448832702","instance_url":"https://yourInstance.salesforce.com/","signature":"0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=","access_token":"00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G"}"#,
        expect: Expect::Token(Tok {
            access_token: "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0G",
            token_type: "Bearer",
            expires_in: None,
            refresh_token: None,
            scope: None,
            extra: &[
                (
                    "id",
                    "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P",
                ),
                ("instance_url", "https://yourInstance.salesforce.com/"),
                ("issued_at", "1278448832702"),
                ("signature", "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ="),
            ],
        }),
    },
    Case {
        name: "Salesforce: provider-specific invalid_client_id with HTTP 400",
        source: "https://github.com/omniphx/forrest/issues/184",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json;charset=UTF-8"),
        body: r#"{"error":"invalid_client_id","error_description":"client identifier invalid"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_client_id",
            description: Some("client identifier invalid"),
        },
    },
    Case {
        name: "Salesforce: invalid_client with HTTP 400",
        source: "https://github.com/restforce/restforce/issues/338",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json;charset=UTF-8"),
        body: r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_client",
            description: Some("invalid client credentials"),
        },
    },
    // ---- Microsoft Entra
    Case {
        name: "Entra v1 endpoint: expires_in, ext_expires_in and expires_on as JSON strings",
        source: "https://github.com/SecureAuthCorp/oauth2c/issues/37",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"token_type":"Bearer","expires_in":"3599","ext_expires_in":"3599","expires_on":"1671217329","access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOi.v1","id_token":"eyJ0eXAiOiJKV1QiLCJhbGciOi.id"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJ0eXAiOiJKV1QiLCJhbGciOi.v1",
            token_type: "Bearer",
            expires_in: Some(3599),
            refresh_token: None,
            scope: None,
            extra: &[("expires_on", "1671217329"), ("ext_expires_in", "3599")],
        }),
    },
    Case {
        name: "Azure AD (ADAL/MSI style): numeric expires_on/not_before, resource, empty refresh_token",
        source: "https://github.com/Azure/go-autorest/issues/696",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"eyJ0eXAiOiJKV1Qi.mgmt","refresh_token":"","expires_in":86399,"expires_on":1652886678,"not_before":1652799978,"resource":"https://management.azure.com/","token_type":"Bearer"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJ0eXAiOiJKV1Qi.mgmt",
            token_type: "Bearer",
            expires_in: Some(86399),
            refresh_token: None,
            scope: None,
            extra: &[
                ("expires_on", "1652886678"),
                ("not_before", "1652799978"),
                ("resource", "https://management.azure.com/"),
            ],
        }),
    },
    Case {
        name: "Entra v2 auth-code doc sample: scope shown URL-encoded is kept verbatim (no decoding)",
        source: "https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik5HVEZ2ZEstZnl0aEV1Q","token_type":"Bearer","expires_in":3599,"scope":"https%3A%2F%2Fgraph.microsoft.com%2Fmail.read","refresh_token":"AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMxZGUTdM0t4B4","id_token":"eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.eyJhdWQiOiIyZDRkMTFhMi1mODE0"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiIsIng1dCI6Ik5HVEZ2ZEstZnl0aEV1Q",
            token_type: "Bearer",
            expires_in: Some(3599),
            refresh_token: Some("AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMxZGUTdM0t4B4"),
            scope: Some("https%3A%2F%2Fgraph.microsoft.com%2Fmail.read"),
            extra: &[],
        }),
    },
    Case {
        name: "Entra v2: invalid_grant 400 with AADSTS text (CRLF inside, shown escaped) in error_description and error_uri",
        source: "https://github.com/Azure-Samples/ms-identity-dotnet-webapi-azurefunctions/issues/3",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"invalid_grant","error_description":"AADSTS9002313: Invalid request. Request is malformed or invalid.\r\nTrace ID: f86ee3a2-1c21-48b0-97fb-ab08841b2100\r\nCorrelation ID: b5de6866-5136-40f0-a128-b54f8cc9be2b\r\nTimestamp: 2020-07-08 13:34:18Z","error_codes":[9002313],"timestamp":"2020-07-08 13:34:18Z","trace_id":"f86ee3a2-1c21-48b0-97fb-ab08841b2100","correlation_id":"b5de6866-5136-40f0-a128-b54f8cc9be2b","error_uri":"https://login.microsoftonline.com/error?code=9002313"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_grant",
            description: Some(
                "AADSTS9002313: Invalid request. Request is malformed or invalid.\\r\\nTrace ID: f86ee3a2-1c21-48b0-97fb-ab08841b2100\\r\\nCorrelation ID: b5de6866-5136-40f0-a128-b54f8cc9be2b\\r\\nTimestamp: 2020-07-08 13:34:18Z",
            ),
        },
    },
    Case {
        name: "Entra: invalid_scope 400 (AADSTS70011)",
        source: "https://learn.microsoft.com/entra/identity-platform/reference-error-codes",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value for the input parameter 'scope' isn't valid. The scope https://foo.microsoft.com/mail.read isn't valid.\r\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\r\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\r\nTimestamp: 2016-01-09 02:02:12Z","error_codes":[70011],"timestamp":"2016-01-09 02:02:12Z","trace_id":"255d1aef-8c98-452f-ac51-23d051240864","correlation_id":"fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_scope",
            description: Some(
                "AADSTS70011: The provided value for the input parameter 'scope' isn't valid. The scope https://foo.microsoft.com/mail.read isn't valid.\\r\\nTrace ID: 255d1aef-8c98-452f-ac51-23d051240864\\r\\nCorrelation ID: fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\\r\\nTimestamp: 2016-01-09 02:02:12Z",
            ),
        },
    },
    Case {
        name: "Entra: invalid_client 401 (AADSTS7000215 wrong secret)",
        source: "https://github.com/keycloak/keycloak/issues/31294",
        format: Format::STANDARD,
        status: 401,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 18ca6aad-314e-4069-9bb3-ddf8cd312100 Correlation ID: 5cdbfdc4-bb99-48ca-b411-f53541f6ed62 Timestamp: 2024-07-15 11:14:02Z","error_codes":[7000215],"timestamp":"2024-07-15 11:14:02Z","trace_id":"18ca6aad-314e-4069-9bb3-ddf8cd312100","correlation_id":"5cdbfdc4-bb99-48ca-b411-f53541f6ed62","error_uri":"https://login.microsoftonline.com/error?code=7000215"}"#,
        expect: Expect::Provider {
            status: 401,
            code: "invalid_client",
            description: Some(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID. Trace ID: 18ca6aad-314e-4069-9bb3-ddf8cd312100 Correlation ID: 5cdbfdc4-bb99-48ca-b411-f53541f6ed62 Timestamp: 2024-07-15 11:14:02Z",
            ),
        },
    },
    Case {
        name: "Entra: temporarily_unavailable with HTTP 503 (code from the token-endpoint error table; body adapted)",
        source: "https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow#error-codes-for-token-endpoint-errors",
        format: Format::STANDARD,
        status: 503,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"temporarily_unavailable","error_description":"The server is temporarily too busy to handle the request."}"#,
        expect: Expect::Provider {
            status: 503,
            code: "temporarily_unavailable",
            description: Some("The server is temporarily too busy to handle the request."),
        },
    },
    // ---- PayPal
    Case {
        name: "PayPal client credentials: app_id and nonce extras, URL scopes",
        source: "https://developer.paypal.com/api/rest/authentication/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"scope":"https://uri.paypal.com/services/invoicing https://uri.paypal.com/services/disputes/read-buyer openid","access_token":"A21AAFEpH4PsADK7qSS7pSRsgzfENtu","token_type":"Bearer","app_id":"APP-80W284485P519543T","expires_in":31668,"nonce":"2020-04-03T15:35:36ZaYZlGvEkV4yVSz8g6bAKFoGSEzuy3CQcz3ljhibkOHg"}"#,
        expect: Expect::Token(Tok {
            access_token: "A21AAFEpH4PsADK7qSS7pSRsgzfENtu",
            token_type: "Bearer",
            expires_in: Some(31668),
            refresh_token: None,
            scope: Some(
                "https://uri.paypal.com/services/invoicing https://uri.paypal.com/services/disputes/read-buyer openid",
            ),
            extra: &[
                ("app_id", "APP-80W284485P519543T"),
                (
                    "nonce",
                    "2020-04-03T15:35:36ZaYZlGvEkV4yVSz8g6bAKFoGSEzuy3CQcz3ljhibkOHg",
                ),
            ],
        }),
    },
    Case {
        name: "PayPal identity tokenservice: expires_in sent as a JSON string",
        source: "https://github.com/plutov/paypal/issues/41",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"token_type":"Bearer","expires_in":"28800","refresh_token":"R23AAGvzXg3mQ","id_token":"eyJhbGciOiJIUzI1NiJ9.pp","access_token":"A23AAHbWz8YpQ"}"#,
        expect: Expect::Token(Tok {
            access_token: "A23AAHbWz8YpQ",
            token_type: "Bearer",
            expires_in: Some(28800),
            refresh_token: Some("R23AAGvzXg3mQ"),
            scope: None,
            extra: &[],
        }),
    },
    Case {
        name: "PayPal: invalid_grant with extra correlation_id/information_link (HTTP 400)",
        source: "https://github.com/plutov/paypal/issues/41",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json"),
        body: r#"{"error_description":"Grant type is null","error":"invalid_grant","correlation_id":"a7087aa10fff1","information_link":"https://developer.paypal.com/docs/api/#errors"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_grant",
            description: Some("Grant type is null"),
        },
    },
    // ---- Facebook
    Case {
        name: "Old Facebook (< v2.3): form syntax served as text/plain, `expires` instead of `expires_in`",
        source: "https://github.com/dart-archive/oauth2/issues/7",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("text/plain; charset=UTF-8"),
        body: "access_token=CAAC9nzmHiUwBAE36sC6fPvDOtlZA&expires=5181866",
        expect: Expect::Token(Tok {
            access_token: "CAAC9nzmHiUwBAE36sC6fPvDOtlZA",
            token_type: "Bearer",
            expires_in: Some(5181866),
            refresh_token: None,
            scope: None,
            extra: &[],
        }),
    },
    Case {
        name: "Facebook >= v2.3: JSON body with lowercase bearer",
        source: "https://github.com/smart4solutions/apex_oauth/issues/17",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"EAAGm0PX4ZCpsBA","token_type":"bearer","expires_in":5183211}"#,
        expect: Expect::Token(Tok {
            access_token: "EAAGm0PX4ZCpsBA",
            token_type: "bearer",
            expires_in: Some(5183211),
            refresh_token: None,
            scope: None,
            extra: &[],
        }),
    },
    Case {
        name: "Old Facebook Graph error: `error` is an object, its type the code and its message the description",
        source: "https://github.com/bnoguchi/everyauth/issues/94",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":{"message":"Code was invalid or expired. User 100001 has not authorized application 2001.","type":"OAuthException"}}"#,
        expect: Expect::Provider {
            status: 400,
            code: "OAuthException",
            description: Some(
                "Code was invalid or expired. User 100001 has not authorized application 2001.",
            ),
        },
    },
    Case {
        name: "Old Facebook text/plain form with an empty expires: no stated lifetime",
        source: "https://github.com/huandu/facebook/pull/10",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("text/plain; charset=UTF-8"),
        body: "access_token=EAAGm0PX4ZCpsBA&expires=",
        expect: Expect::Token(Tok {
            access_token: "EAAGm0PX4ZCpsBA",
            token_type: "Bearer",
            expires_in: None,
            refresh_token: None,
            scope: None,
            extra: &[],
        }),
    },
    // ---- Keycloak
    Case {
        name: "Keycloak token exchange: negative expires_in means expired immediately; dashed extra names kept",
        source: "https://github.com/keycloak/keycloak/issues/40611",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.kc","expires_in":-103,"refresh_expires_in":0,"token_type":"Bearer","not-before-policy":0,"session_state":"af927eef-cb86-4c91-8fa0-32a7f65f625a","scope":"profile email","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJhbGciOiJSUzI1NiJ9.kc",
            token_type: "Bearer",
            expires_in: Some(0),
            refresh_token: None,
            scope: Some("profile email"),
            extra: &[
                (
                    "issued_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("not-before-policy", "0"),
                ("refresh_expires_in", "0"),
                ("session_state", "af927eef-cb86-4c91-8fa0-32a7f65f625a"),
            ],
        }),
    },
    Case {
        name: "Keycloak: unauthorized_client with HTTP 401",
        source: "https://github.com/Stirling-Tools/Stirling-PDF/issues/6567",
        format: Format::STANDARD,
        status: 401,
        content_type: Some("application/json"),
        body: r#"{"error":"unauthorized_client","error_description":"Invalid client or Invalid client credentials"}"#,
        expect: Expect::Provider {
            status: 401,
            code: "unauthorized_client",
            description: Some("Invalid client or Invalid client credentials"),
        },
    },
    Case {
        name: "Upstream IdP seen through Keycloak: numeric expires_in plus a string expires_at (expires_in wins)",
        source: "https://github.com/keycloak/keycloak/issues/35704",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"token_type":"Bearer","access_token":"pkeptdzhrmzvnedabj0f","expires_in":86400,"expires_at":"1733998890","refresh_token":"ylcxyptzjoccog6uaoxz","id_token":"eyJhbGciOiJub25lIn0=.ey"}"#,
        expect: Expect::Token(Tok {
            access_token: "pkeptdzhrmzvnedabj0f",
            token_type: "Bearer",
            expires_in: Some(86400),
            refresh_token: Some("ylcxyptzjoccog6uaoxz"),
            scope: None,
            extra: &[],
        }),
    },
    // ---- Okta
    Case {
        name: "Okta: standard OIDC token response with id_token",
        source: "https://developer.okta.com/docs/reference/api/oidc/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"token_type":"Bearer","expires_in":3600,"access_token":"eyJraWQiOiJ.okta","scope":"openid offline_access","refresh_token":"a9VpZDRCeFh3Nkk2VdY","id_token":"eyJraWQiOiJ.id"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJraWQiOiJ.okta",
            token_type: "Bearer",
            expires_in: Some(3600),
            refresh_token: Some("a9VpZDRCeFh3Nkk2VdY"),
            scope: Some("openid offline_access"),
            extra: &[],
        }),
    },
    Case {
        name: "Okta: invalid_client with HTTP 401",
        source: "https://github.com/okta/okta-auth-js/issues/455",
        format: Format::STANDARD,
        status: 401,
        content_type: Some("application/json"),
        body: r#"{"error":"invalid_client","error_description":"Client authentication failed. Either the client or the client credentials are invalid."}"#,
        expect: Expect::Provider {
            status: 401,
            code: "invalid_client",
            description: Some(
                "Client authentication failed. Either the client or the client credentials are invalid.",
            ),
        },
    },
    Case {
        name: "Okta: invalid_request with HTTP 401 (two client authentication methods)",
        source: "https://github.com/boylesoftware/tomcat-oidcauth/issues/6",
        format: Format::STANDARD,
        status: 401,
        content_type: Some("application/json"),
        body: r#"{"error_description":"Cannot supply multiple client credentials. Use one of the following: credentials in the Authorization header, credentials in the post body, or a client_assertion in the post body.","error":"invalid_request"}"#,
        expect: Expect::Provider {
            status: 401,
            code: "invalid_request",
            description: Some(
                "Cannot supply multiple client credentials. Use one of the following: credentials in the Authorization header, credentials in the post body, or a client_assertion in the post body.",
            ),
        },
    },
    // ---- Auth0
    Case {
        name: "Auth0: authorization code exchange, no scope in response",
        source: "https://auth0.com/docs/get-started/authentication-and-authorization-flow/authorization-code-flow/call-your-api-using-the-authorization-code-flow",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"eyJz93a.k4laUWw","refresh_token":"GEbRxBN.edjnXbL","id_token":"eyJ0XAi.4faeEoQ","token_type":"Bearer","expires_in":86400}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJz93a.k4laUWw",
            token_type: "Bearer",
            expires_in: Some(86400),
            refresh_token: Some("GEbRxBN.edjnXbL"),
            scope: None,
            extra: &[],
        }),
    },
    Case {
        name: "Auth0: invalid_grant delivered with HTTP 403",
        source: "https://github.com/auth0/react-native-auth0/issues/224",
        format: Format::STANDARD,
        status: 403,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"invalid_grant","error_description":"Wrong email or password."}"#,
        expect: Expect::Provider {
            status: 403,
            code: "invalid_grant",
            description: Some("Wrong email or password."),
        },
    },
    // ---- Google
    Case {
        name: "Google: space-separated URL scopes and refresh token",
        source: "https://developers.google.com/identity/protocols/oauth2/web-server",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"1/fFAGRNJru1FTz70BzhT3Zg","expires_in":3920,"token_type":"Bearer","scope":"https://www.googleapis.com/auth/drive.metadata.readonly https://www.googleapis.com/auth/calendar.readonly","refresh_token":"1//xEoDL4iW3cxlI7yDbSRFYNG01kVKM2C"}"#,
        expect: Expect::Token(Tok {
            access_token: "1/fFAGRNJru1FTz70BzhT3Zg",
            token_type: "Bearer",
            expires_in: Some(3920),
            refresh_token: Some("1//xEoDL4iW3cxlI7yDbSRFYNG01kVKM2C"),
            scope: Some(
                "https://www.googleapis.com/auth/drive.metadata.readonly https://www.googleapis.com/auth/calendar.readonly",
            ),
            extra: &[],
        }),
    },
    Case {
        name: "Google: invalid_grant 400 for a revoked refresh token",
        source: "https://workos.com/blog/invalid-grant-oauth-errors-by-provider",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_grant",
            description: Some("Token has been expired or revoked."),
        },
    },
    // ---- Dropbox
    Case {
        name: "Dropbox: lowercase bearer, account_id and uid extras",
        source: "https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"sl.AbX9y6Fe3AuH5o66","expires_in":14400,"token_type":"bearer","scope":"account_info.read files.content.read files.content.write files.metadata.read","refresh_token":"nBiM85CZALsAAAAAAAAAAQXHBoNp","account_id":"dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc","uid":"12345"}"#,
        expect: Expect::Token(Tok {
            access_token: "sl.AbX9y6Fe3AuH5o66",
            token_type: "bearer",
            expires_in: Some(14400),
            refresh_token: Some("nBiM85CZALsAAAAAAAAAAQXHBoNp"),
            scope: Some(
                "account_info.read files.content.read files.content.write files.metadata.read",
            ),
            extra: &[
                ("account_id", "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"),
                ("uid", "12345"),
            ],
        }),
    },
    Case {
        name: "Dropbox (legacy): JSON served as text/javascript",
        source: "https://github.com/google/gtm-oauth2/issues/34",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("text/javascript"),
        body: r#"{"access_token":"ABCDEFGHIJKLMNOP","token_type":"bearer","uid":"12345"}"#,
        expect: Expect::Token(Tok {
            access_token: "ABCDEFGHIJKLMNOP",
            token_type: "bearer",
            expires_in: None,
            refresh_token: None,
            scope: None,
            extra: &[("uid", "12345")],
        }),
    },
    // ---- HubSpot
    Case {
        name: "HubSpot v1: 400 body with status/message but no `error` field",
        source: "https://nango.dev/blog/hubspot-oauth-bad-refresh-token",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json;charset=utf-8"),
        body: r#"{"status":"BAD_REFRESH_TOKEN","message":"missing or invalid refresh token"}"#,
        expect: Expect::Malformed { status: 400 },
    },
    Case {
        name: "HubSpot v3: RFC error plus HubSpot status/message fields",
        source: "https://developers.hubspot.com/docs/api-reference/auth-oauth-v3/guide",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json;charset=utf-8"),
        body: r#"{"error":"invalid_grant","error_description":"refresh token is invalid, expired or revoked","status":"BAD_REFRESH_TOKEN","message":"refresh token is invalid, expired or revoked"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_grant",
            description: Some("refresh token is invalid, expired or revoked"),
        },
    },
    // ---- Zoom
    Case {
        name: "Zoom: lowercase bearer and api_url extra",
        source: "https://developers.zoom.us/docs/integrations/oauth/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"eyJzdiI6IjAwMDAwMSJ9.zoom","token_type":"bearer","refresh_token":"eyJzdiI6IjAwMDAwMSJ9.rt","expires_in":3599,"scope":"user:read:admin","api_url":"https://api.zoom.us"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJzdiI6IjAwMDAwMSJ9.zoom",
            token_type: "bearer",
            expires_in: Some(3599),
            refresh_token: Some("eyJzdiI6IjAwMDAwMSJ9.rt"),
            scope: Some("user:read:admin"),
            extra: &[("api_url", "https://api.zoom.us")],
        }),
    },
    Case {
        name: "Zoom: error text in `reason`, read as the description",
        source: "https://github.com/raycast/extensions/issues/10896",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"reason":"Invalid Token!","error":"invalid_grant"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_grant",
            description: Some("Invalid Token!"),
        },
    },
    // ---- Atlassian
    Case {
        name: "Atlassian 3LO (as documented): no token_type -> Bearer",
        source: "https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"eyJraWQiOiJhdXRoLmF0bGFzc2lhbi5jb20.atl","expires_in":3600,"scope":"read:jira-user read:jira-work"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJraWQiOiJhdXRoLmF0bGFzc2lhbi5jb20.atl",
            token_type: "Bearer",
            expires_in: Some(3600),
            refresh_token: None,
            scope: Some("read:jira-user read:jira-work"),
            extra: &[],
        }),
    },
    // ---- eBay
    Case {
        name: "eBay: token_type \"User Access Token\" and refresh_token_expires_in",
        source: "https://developer.ebay.com/api-docs/static/oauth-auth-code-grant-request.html",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"v^1.1#i^1#p^3#r^1...XzMjRV4xMjg0","expires_in":7200,"refresh_token":"v^1.1#i^1#p^3#r^1...zYjRV4xMjg0","refresh_token_expires_in":47304000,"token_type":"User Access Token"}"#,
        expect: Expect::Token(Tok {
            access_token: "v^1.1#i^1#p^3#r^1...XzMjRV4xMjg0",
            token_type: "User Access Token",
            expires_in: Some(7200),
            refresh_token: Some("v^1.1#i^1#p^3#r^1...zYjRV4xMjg0"),
            scope: None,
            extra: &[("refresh_token_expires_in", "47304000")],
        }),
    },
    // ---- VK
    Case {
        name: "VK offline scope: expires_in 0 means no expiry, no token_type, numeric user_id",
        source: "https://github.com/VKCOM/vk-java-sdk/issues/18",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"533bacf01e11f55b536a565b57531ac1","expires_in":0,"user_id":66748}"#,
        expect: Expect::Token(Tok {
            access_token: "533bacf01e11f55b536a565b57531ac1",
            token_type: "Bearer",
            expires_in: None,
            refresh_token: None,
            scope: None,
            extra: &[("user_id", "66748")],
        }),
    },
    Case {
        name: "VK: invalid_grant with HTTP 401",
        source: "https://github.com/7even/vkontakte_api/issues/38",
        format: Format::STANDARD,
        status: 401,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"invalid_grant","error_description":"Code is invalid or expired."}"#,
        expect: Expect::Provider {
            status: 401,
            code: "invalid_grant",
            description: Some("Code is invalid or expired."),
        },
    },
    // ---- Twitch
    Case {
        name: "Twitch: scope as a JSON array, lowercase bearer",
        source: "https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"rfx2uswqe8l4g1mkagrvg5tv0ks3","expires_in":14124,"refresh_token":"5b93chm6hdve3mycz05zfzatkfdenfspp1h1ar2x","scope":["channel:moderate","chat:edit","chat:read"],"token_type":"bearer"}"#,
        expect: Expect::Token(Tok {
            access_token: "rfx2uswqe8l4g1mkagrvg5tv0ks3",
            token_type: "bearer",
            expires_in: Some(14124),
            refresh_token: Some("5b93chm6hdve3mycz05zfzatkfdenfspp1h1ar2x"),
            scope: Some("channel:moderate chat:edit chat:read"),
            extra: &[],
        }),
    },
    Case {
        name: "Twitch (kraken): array scope and no token_type",
        source: "https://github.com/justintv/Twitch-API/issues/691",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"xxxxxxxx","refresh_token":"yyyyyyyyyy","scope":["user_read"],"expires_in":13293}"#,
        expect: Expect::Token(Tok {
            access_token: "xxxxxxxx",
            token_type: "Bearer",
            expires_in: Some(13293),
            refresh_token: Some("yyyyyyyyyy"),
            scope: Some("user_read"),
            extra: &[],
        }),
    },
    Case {
        name: "Twitch: 400 error body uses status/message, no `error` field",
        source: "https://github.com/PhantomBot/PhantomBot/issues/2401",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json"),
        body: r#"{"message":"Parameter redirect_uri does not match registered URI","status":400}"#,
        expect: Expect::Malformed { status: 400 },
    },
    Case {
        name: "Twitch: HTTP 500 with a JSON body that has no `error`",
        source: "https://github.com/twitchdev/issues/issues/200",
        format: Format::STANDARD,
        status: 500,
        content_type: Some("application/json"),
        body: r#"{"status":500,"message":"Missing column authorization_id from item map[]"}"#,
        expect: Expect::Malformed { status: 500 },
    },
    // ---- Spotify
    Case {
        name: "Spotify: standard response, space-separated scope",
        source: "https://developer.spotify.com/documentation/web-api/tutorials/code-flow",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"NgCXRKc.MzYjw","token_type":"Bearer","scope":"user-read-private user-read-email","expires_in":3600,"refresh_token":"NgAagAc.Um_SHo"}"#,
        expect: Expect::Token(Tok {
            access_token: "NgCXRKc.MzYjw",
            token_type: "Bearer",
            expires_in: Some(3600),
            refresh_token: Some("NgAagAc.Um_SHo"),
            scope: Some("user-read-private user-read-email"),
            extra: &[],
        }),
    },
    // ---- LinkedIn
    Case {
        name: "LinkedIn: no token_type, comma-separated scope split with COMMA_SCOPES",
        source: "https://www.volcengine.com/article/1706662",
        format: Format::COMMA_SCOPES,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"AQX09XfxIcceXWHz9Mutkbjfsj3iqJpt","expires_in":5183999,"scope":"r_liteprofile,w_member_social"}"#,
        expect: Expect::Token(Tok {
            access_token: "AQX09XfxIcceXWHz9Mutkbjfsj3iqJpt",
            token_type: "Bearer",
            expires_in: Some(5183999),
            refresh_token: None,
            scope: Some("r_liteprofile w_member_social"),
            extra: &[],
        }),
    },
    // ---- Strava
    Case {
        name: "Strava: expires_in and absolute expires_at both present (expires_in wins), athlete object extra",
        source: "https://developers.strava.com/docs/authentication/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"token_type":"Bearer","expires_at":1568775134,"expires_in":21600,"refresh_token":"e5n567567","access_token":"a4b945687g","athlete":{"resource_state":2,"id":134815}}"#,
        expect: Expect::Token(Tok {
            access_token: "a4b945687g",
            token_type: "Bearer",
            expires_in: Some(21600),
            refresh_token: Some("e5n567567"),
            scope: None,
            extra: &[("athlete", "{\"id\":134815,\"resource_state\":2}")],
        }),
    },
    Case {
        name: "Strava-style refresh carrying only an absolute expires_at (Unix seconds; NOW=1800000000)",
        source: "https://github.com/lelylan/simple-oauth2/pull/277",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"token_type":"Bearer","access_token":"a9b723","expires_at":1800021600,"refresh_token":"b5c569"}"#,
        expect: Expect::Token(Tok {
            access_token: "a9b723",
            token_type: "Bearer",
            expires_in: Some(21600),
            refresh_token: Some("b5c569"),
            scope: None,
            extra: &[],
        }),
    },
    // ---- Reddit
    Case {
        name: "Reddit: lowercase bearer",
        source: "https://github.com/reddit-archive/reddit/wiki/OAuth2",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"J1qK1c18UUGJFAzz9xnH56584l4","token_type":"bearer","expires_in":3600,"scope":"identity read","refresh_token":"7Hb8aKqZMHJj1uWQ3ZF2s8Hd"}"#,
        expect: Expect::Token(Tok {
            access_token: "J1qK1c18UUGJFAzz9xnH56584l4",
            token_type: "bearer",
            expires_in: Some(3600),
            refresh_token: Some("7Hb8aKqZMHJj1uWQ3ZF2s8Hd"),
            scope: Some("identity read"),
            extra: &[],
        }),
    },
    Case {
        name: "Reddit: 401 with a numeric `error` (not an OAuth error code)",
        source: "https://github.com/PersonalDataPipeline/pdpl-cli/issues/5",
        format: Format::STANDARD,
        status: 401,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"message":"Unauthorized","error":401}"#,
        expect: Expect::Malformed { status: 401 },
    },
    // ---- Amazon
    Case {
        name: "Login with Amazon: lowercase bearer, Atza|/Atzr| tokens",
        source: "https://developer.amazon.com/docs/login-with-amazon/authorization-code-grant.html",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"Atza|IQEBLjAsAhRmHjNgHpi0U","token_type":"bearer","expires_in":3600,"refresh_token":"Atzr|IQEBLzAtAhRPpMJxdwVz2N"}"#,
        expect: Expect::Token(Tok {
            access_token: "Atza|IQEBLjAsAhRmHjNgHpi0U",
            token_type: "bearer",
            expires_in: Some(3600),
            refresh_token: Some("Atzr|IQEBLzAtAhRPpMJxdwVz2N"),
            scope: None,
            extra: &[],
        }),
    },
    // ---- Discord
    Case {
        name: "Discord webhook.incoming: nested webhook object kept as sorted compact JSON (null and number inside)",
        source: "https://discord.com/developers/docs/topics/oauth2",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"token_type":"Bearer","access_token":"GNaVzEtATqdh173tNHEXY9ZYAuhiYxvy","scope":"webhook.incoming","expires_in":604800,"refresh_token":"PvPL7ELyMDc1836457XCDh1Y8jPbRm","webhook":{"application_id":"310954232226357250","name":"testwebhook","url":"https://discord.com/api/webhooks/347114750880120863/kKDdjXa1g9tK","channel_id":"345626669224982402","token":"kKDdjXa1g9tK","type":1,"avatar":null,"guild_id":"290926792226357250","id":"347114750880120863"}}"#,
        expect: Expect::Token(Tok {
            access_token: "GNaVzEtATqdh173tNHEXY9ZYAuhiYxvy",
            token_type: "Bearer",
            expires_in: Some(604800),
            refresh_token: Some("PvPL7ELyMDc1836457XCDh1Y8jPbRm"),
            scope: Some("webhook.incoming"),
            extra: &[(
                "webhook",
                "{\"application_id\":\"310954232226357250\",\"avatar\":null,\"channel_id\":\"345626669224982402\",\"guild_id\":\"290926792226357250\",\"id\":\"347114750880120863\",\"name\":\"testwebhook\",\"token\":\"kKDdjXa1g9tK\",\"type\":1,\"url\":\"https://discord.com/api/webhooks/347114750880120863/kKDdjXa1g9tK\"}",
            )],
        }),
    },
    // ---- Box
    Case {
        name: "Box OAuth 2.0: lowercase bearer, issued_token_type extra",
        source: "https://developer.box.com/guides/authentication/tokens/access-tokens/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"c3FIOG9vSGV4VHo4QzAyg5T1JvNnJoZ3Ex","expires_in":3600,"token_type":"bearer","refresh_token":"c3FIOG9vSGV4VHo4QzAyg5T1JvNnJoZ3Ey","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
        expect: Expect::Token(Tok {
            access_token: "c3FIOG9vSGV4VHo4QzAyg5T1JvNnJoZ3Ex",
            token_type: "bearer",
            expires_in: Some(3600),
            refresh_token: Some("c3FIOG9vSGV4VHo4QzAyg5T1JvNnJoZ3Ey"),
            scope: None,
            extra: &[(
                "issued_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            )],
        }),
    },
    Case {
        name: "Box client credentials/JWT: no token_type at all, empty restricted_to array",
        source: "https://developer.box.com/guides/authentication/tokens/access-tokens/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"DkXZmsjUKizvL2z0WiaLvMBeQ756XCGGf","expires_in":4123,"restricted_to":[],"issued_token_type":"bearer"}"#,
        expect: Expect::Token(Tok {
            access_token: "DkXZmsjUKizvL2z0WiaLvMBeQ756XCGGf",
            token_type: "Bearer",
            expires_in: Some(4123),
            refresh_token: None,
            scope: None,
            extra: &[("issued_token_type", "bearer"), ("restricted_to", "[]")],
        }),
    },
    // ---- QuickBooks/Intuit
    Case {
        name: "Intuit: lowercase bearer, x_refresh_token_expires_in extra",
        source: "https://developer.intuit.com/app/developer/qbo/docs/develop/authentication-and-authorization/oauth-2.0",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"token_type":"bearer","expires_in":3600,"refresh_token":"Q311488394272qbajGfLBwGmVsbF6","x_refresh_token_expires_in":15551893,"access_token":"eyJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.qb"}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2In0.qb",
            token_type: "bearer",
            expires_in: Some(3600),
            refresh_token: Some("Q311488394272qbajGfLBwGmVsbF6"),
            scope: None,
            extra: &[("x_refresh_token_expires_in", "15551893")],
        }),
    },
    Case {
        name: "Intuit: bare {\"error\":\"invalid_grant\"} with HTTP 400",
        source: "https://github.com/intuit/oauth-jsclient/issues/128",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json;charset=utf-8"),
        body: r#"{"error":"invalid_grant"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_grant",
            description: None,
        },
    },
    // ---- Xero
    Case {
        name: "Xero: id_token plus offline_access scope",
        source: "https://developer.xero.com/documentation/guides/oauth2/auth-flow/",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"id_token":"xxxxxx.yyyyyyy.zzzzzz","access_token":"xxxxxx.yyyyyyy.aaaaaa","expires_in":1800,"token_type":"Bearer","refresh_token":"xxxxxxxxx","scope":"openid profile email accounting.transactions offline_access"}"#,
        expect: Expect::Token(Tok {
            access_token: "xxxxxx.yyyyyyy.aaaaaa",
            token_type: "Bearer",
            expires_in: Some(1800),
            refresh_token: Some("xxxxxxxxx"),
            scope: Some("openid profile email accounting.transactions offline_access"),
            extra: &[],
        }),
    },
    // ---- Zoho
    Case {
        name: "Zoho: expires_in in milliseconds (MILLIS format), expires_in_sec and api_domain extras",
        source: "https://github.com/Weble/ZohoClient/issues/11",
        format: Format::MILLIS,
        status: 200,
        content_type: Some("application/json;charset=UTF-8"),
        body: r#"{"access_token":"1000.2370ff4a2e.zoho","expires_in_sec":3600,"api_domain":"https://www.zohoapis.com","token_type":"Bearer","expires_in":3600000}"#,
        expect: Expect::Token(Tok {
            access_token: "1000.2370ff4a2e.zoho",
            token_type: "Bearer",
            expires_in: Some(3600),
            refresh_token: None,
            scope: None,
            extra: &[
                ("api_domain", "https://www.zohoapis.com"),
                ("expires_in_sec", "3600"),
            ],
        }),
    },
    // ---- Sina Weibo
    Case {
        name: "Weibo: JSON body served as text/plain, no token_type, uid extra",
        source: "https://github.com/c9s/Plack-Middleware-OAuth/pull/8",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("text/plain;charset=UTF-8"),
        body: r#"{"access_token":"2.00WsUooC2Qf7MD7939e77fc0pxQHIqC","expires_in":86400,"uid":"2583117564"}"#,
        expect: Expect::Token(Tok {
            access_token: "2.00WsUooC2Qf7MD7939e77fc0pxQHIqC",
            token_type: "Bearer",
            expires_in: Some(86400),
            refresh_token: None,
            scope: None,
            extra: &[("uid", "2583117564")],
        }),
    },
    // ---- Harvest
    Case {
        name: "Harvest: success with HTTP 201 Created",
        source: "https://github.com/pow-auth/assent/pull/112",
        format: Format::STANDARD,
        status: 201,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"access_token":"1234567.pt.AbCdEf","refresh_token":"1234567.rt.GhIjKl","token_type":"bearer","expires_in":1209600}"#,
        expect: Expect::Token(Tok {
            access_token: "1234567.pt.AbCdEf",
            token_type: "bearer",
            expires_in: Some(1209600),
            refresh_token: Some("1234567.rt.GhIjKl"),
            scope: None,
            extra: &[],
        }),
    },
    // ---- Ostrom
    Case {
        name: "Ostrom API: client credentials success with HTTP 201 Created",
        source: "https://github.com/openhab/openhab-core/issues/5284",
        format: Format::STANDARD,
        status: 201,
        content_type: Some("application/json"),
        body: r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.ostrom","token_type":"Bearer","expires_in":3600}"#,
        expect: Expect::Token(Tok {
            access_token: "eyJhbGciOiJSUzI1NiJ9.ostrom",
            token_type: "Bearer",
            expires_in: Some(3600),
            refresh_token: None,
            scope: None,
            extra: &[],
        }),
    },
    // ---- SugarCRM
    Case {
        name: "SugarCRM (PHP OAuth2 server): expires_in as string and \"scope\": null",
        source: "https://github.com/oauthlib/oauthlib/pull/391",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: r#"{"access_token":"20fdab98f6518335db837c2039125ae16b523eb86","expires_in":"7200","token_type":"Bearer","scope":null}"#,
        expect: Expect::Token(Tok {
            access_token: "20fdab98f6518335db837c2039125ae16b523eb86",
            token_type: "Bearer",
            expires_in: Some(7200),
            refresh_token: None,
            scope: None,
            extra: &[],
        }),
    },
    // ---- Spring Security OAuth
    Case {
        name: "Spring TokenEndpoint: JSON with no Content-Type header, lowercase bearer",
        source: "https://github.com/spring-attic/spring-security-oauth/issues/1268",
        format: Format::STANDARD,
        status: 200,
        content_type: None,
        body: r#"{"access_token":"e9a3d7d2-5a6b-4c8e-9f0a","token_type":"bearer","refresh_token":"1a2b3c4d-5e6f-7a8b-9c0d","expires_in":43199,"scope":"read write"}"#,
        expect: Expect::Token(Tok {
            access_token: "e9a3d7d2-5a6b-4c8e-9f0a",
            token_type: "bearer",
            expires_in: Some(43199),
            refresh_token: Some("1a2b3c4d-5e6f-7a8b-9c0d"),
            scope: Some("read write"),
            extra: &[],
        }),
    },
    // ---- RFC 6749
    Case {
        name: "RFC 6749 5.1 example: token_type \"example\" and example_parameter extra",
        source: "https://datatracker.ietf.org/doc/html/rfc6749#section-5.1",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json;charset=UTF-8"),
        body: r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"example","expires_in":3600,"refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA","example_parameter":"example_value"}"#,
        expect: Expect::Token(Tok {
            access_token: "2YotnFZFEjr1zCsicMWpAA",
            token_type: "example",
            expires_in: Some(3600),
            refresh_token: Some("tGzv3JOkF0XG5Qx2TlKWIA"),
            scope: None,
            extra: &[("example_parameter", "example_value")],
        }),
    },
    Case {
        name: "RFC 6749 5.2 example: bare invalid_request with HTTP 400",
        source: "https://datatracker.ietf.org/doc/html/rfc6749#section-5.2",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("application/json;charset=UTF-8"),
        body: r#"{"error":"invalid_request"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_request",
            description: None,
        },
    },
    // ---- Kanidm
    Case {
        name: "Kanidm: JSON error body served as text/plain",
        source: "https://github.com/kanidm/kanidm/issues/4470",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("text/plain; charset=utf-8"),
        body: r#"{"error":"invalid_request"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "invalid_request",
            description: None,
        },
    },
    // ---- oauthlib
    Case {
        name: "oauthlib client-credentials server: unsupported_grant_type JSON served as text/html",
        source: "https://github.com/oauthlib/oauthlib/pull/231",
        format: Format::STANDARD,
        status: 400,
        content_type: Some("text/html; charset=utf-8"),
        body: r#"{"error": "unsupported_grant_type"}"#,
        expect: Expect::Provider {
            status: 400,
            code: "unsupported_grant_type",
            description: None,
        },
    },
    // ---- node-oauth2-server
    Case {
        name: "node-oauth2-server: server_error delivered with HTTP 503",
        source: "https://github.com/oauthjs/node-oauth2-server/issues/461",
        format: Format::STANDARD,
        status: 503,
        content_type: Some("application/json; charset=utf-8"),
        body: r#"{"error":"server_error","error_description":"invalid signature"}"#,
        expect: Expect::Provider {
            status: 503,
            code: "server_error",
            description: Some("invalid signature"),
        },
    },
    // ---- Databricks
    Case {
        name: "Databricks OIDC: 503 with an upper-case error_code instead of error, and message",
        source: "https://github.com/databricks/databricks-sdk-go/issues/1072",
        format: Format::STANDARD,
        status: 503,
        content_type: Some("application/json"),
        body: r#"{"message":"The service at /oidc/v1/token is temporarily unavailable. Please try again later. [TraceId: -]","error_code":"TEMPORARILY_UNAVAILABLE"}"#,
        expect: Expect::Provider {
            status: 503,
            code: "temporarily_unavailable",
            description: Some(
                "The service at /oidc/v1/token is temporarily unavailable. Please try again later. [TraceId: -]",
            ),
        },
    },
    // ---- Laravel OAuth2 server
    Case {
        name: "oauth2-server-laravel: HTTP 500 JSON with message/status_code, no `error`",
        source: "https://github.com/lucadegasperi/oauth2-server-laravel/issues/592",
        format: Format::STANDARD,
        status: 500,
        content_type: Some("application/json"),
        body: r#"{"message":"Client authentication failed.","status_code":500}"#,
        expect: Expect::Malformed { status: 500 },
    },
    // ---- Saxo Bank
    Case {
        name: "Wrong token URL: HTML 404 page",
        source: "https://github.com/SaxoBank/openapi-samples-js/issues/2",
        format: Format::STANDARD,
        status: 404,
        content_type: Some("text/html; charset=utf-8"),
        body: r#"<!DOCTYPE html>
<html>
<head><title>404 - File or directory not found.</title></head>
<body><h2>404 - File or directory not found.</h2><p>The resource you are looking for might have been removed.</p></body>
</html>
"#,
        expect: Expect::Malformed { status: 404 },
    },
    // ---- Mattermost
    Case {
        name: "Mattermost: invalid code answered with an HTML page and HTTP 500",
        source: "https://github.com/mattermost/mattermost/issues/10924",
        format: Format::STANDARD,
        status: 500,
        content_type: Some("text/html; charset=utf-8"),
        body: r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>Mattermost</title></head><body><div id="root"></div><noscript>To use Mattermost, please enable JavaScript.</noscript></body></html>"#,
        expect: Expect::Malformed { status: 500 },
    },
    // ---- FIWARE Keyrock
    Case {
        name: "Keyrock IdM: HTTP 503 with a plain-text body",
        source: "https://github.com/ging/fiware-idm/issues/43",
        format: Format::STANDARD,
        status: 503,
        content_type: Some("text/plain; charset=utf-8"),
        body: "Server error: missing client `grants`",
        expect: Expect::Malformed { status: 503 },
    },
    // ---- Mastodon
    Case {
        name: "Mastodon: failed /oauth/token ends on the HTML sign-in page with HTTP 200",
        source: "https://github.com/mastodon/mastodon/pull/550",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("text/html; charset=utf-8"),
        body: r#"<!DOCTYPE html>
<html lang='en'>
<head>
<meta charset='utf-8'>
<title>Log in - Mastodon</title>
</head>
<body class='lighter'>
<form class='simple_form new_user' id='new_user' action='/auth/sign_in' accept-charset='UTF-8' method='post'>
<input type='email' name='user[email]' id='user_email'>
<input type='password' name='user[password]' id='user_password'>
<button name='button' type='submit'>Log in</button>
</form>
</body>
</html>
"#,
        expect: Expect::Malformed { status: 200 },
    },
    // ---- generic
    Case {
        name: "HTTP 200 with an empty body",
        source: "https://github.com/veryfront/veryfront-code/pull/1940",
        format: Format::STANDARD,
        status: 200,
        content_type: Some("application/json"),
        body: "",
        expect: Expect::Malformed { status: 200 },
    },
];

/// What a reading gave, in terms both builds share.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Token {
        access_token: String,
        token_type: String,
        expires_at: Option<u64>,
        refresh_token: Option<String>,
        scope: Option<String>,
        extra: Vec<(String, String)>,
    },
    Provider {
        status: u16,
        code: String,
        description: Option<String>,
        hint: String,
    },
    Malformed {
        status: u16,
        hint: String,
    },
    Other(String),
}

fn wit_config(format: Format) -> ConnectionConfig {
    ConnectionConfig {
        response_format: ResponseFormat {
            token_path: format.token_path.into(),
            expires_in_unit: match format.unit {
                Unit::Seconds => TimeUnit::Seconds,
                Unit::Milliseconds => TimeUnit::Milliseconds,
            },
            scope_separator: match format.scopes {
                Sep::Space => ScopeSeparator::Space,
                Sep::Comma => ScopeSeparator::Comma,
            },
        },
        ..ConnectionConfig::new(
            GrantType::ClientCredentials,
            "https://idp.example.com/token",
            "client",
        )
    }
}

fn native_format(format: Format) -> native::ResponseFormat {
    native::ResponseFormat {
        token_path: format.token_path.into(),
        expires_in_unit: match format.unit {
            Unit::Seconds => native::TimeUnit::Seconds,
            Unit::Milliseconds => native::TimeUnit::Milliseconds,
        },
        scope_separator: match format.scopes {
            Sep::Space => native::ScopeSeparator::Space,
            Sep::Comma => native::ScopeSeparator::Comma,
        },
    }
}

fn headers(case: &Case) -> Vec<(String, String)> {
    case.content_type
        .map(|ct| ("Content-Type".to_owned(), ct.to_owned()))
        .into_iter()
        .collect()
}

fn in_wasmtime(host: &Host, case: &Case) -> Outcome {
    let response = HttpResponse {
        status: case.status,
        headers: headers(case)
            .into_iter()
            .map(|(name, value)| Pair { name, value })
            .collect(),
        body: case.body.as_bytes().to_vec(),
    };
    let config = wit_config(case.format);
    // The request the vectors answer carries no secret the providers' texts hold.
    let sent = HttpRequest {
        method: "POST".into(),
        url: config.token_url.clone(),
        headers: vec![],
        body: b"grant_type=client_credentials".to_vec(),
    };
    match plugin().parse_token_response(&host.services, &config, &sent, &response) {
        Ok(t) => Outcome::Token {
            access_token: t.access_token.into_secret(),
            token_type: t.token_type,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token.map(|r| r.into_secret()),
            scope: t.scope,
            extra: t.extra_fields.to_vec(),
        },
        Err(CallError::OAuth(OauthError::Provider(e))) => Outcome::Provider {
            status: e.status,
            code: e.code,
            description: e.description,
            hint: e.hint,
        },
        Err(CallError::OAuth(OauthError::MalformedResponse(p))) => Outcome::Malformed {
            status: p.status,
            hint: p.hint,
        },
        Err(other) => Outcome::Other(other.to_string()),
    }
}

fn natively(case: &Case) -> Outcome {
    let response = native_http::HttpResponse {
        status: case.status,
        headers: headers(case),
        body: case.body.as_bytes().to_vec(),
    };
    match token_response::parse(
        &response,
        START,
        &native_format(case.format),
        oauth2_plugin::provider_text::Redactor::none,
    ) {
        Ok(t) => Outcome::Token {
            access_token: t.access_token.into_secret(),
            token_type: t.token_type,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token.map(|r| r.into_secret()),
            scope: t.scope,
            extra: t.extra.to_vec(),
        },
        Err(NativeError::Provider(e)) => Outcome::Provider {
            status: e.status,
            code: e.code,
            description: e.description,
            hint: e.hint,
        },
        Err(NativeError::MalformedResponse(p)) => Outcome::Malformed {
            status: p.status,
            hint: p.hint,
        },
        Err(other) => Outcome::Other(other.to_string()),
    }
}

/// Why `outcome` does not meet the vector's expectation, if it does not.
fn mismatch(expect: &Expect, outcome: &Outcome) -> Option<String> {
    let ok = match (expect, outcome) {
        (
            Expect::Token(want),
            Outcome::Token {
                access_token,
                token_type,
                expires_at,
                refresh_token,
                scope,
                extra,
            },
        ) => {
            access_token == want.access_token
                && token_type == want.token_type
                && *expires_at == want.expires_in.map(|secs| START + secs)
                && refresh_token.as_deref() == want.refresh_token
                && scope.as_deref() == want.scope
                && want
                    .extra
                    .iter()
                    .all(|(name, value)| extra.iter().any(|(n, v)| n == name && v == value))
        }
        (
            Expect::Provider {
                status,
                code,
                description,
            },
            Outcome::Provider {
                status: s,
                code: c,
                description: d,
                hint,
            },
        ) => s == status && c == code && d.as_deref() == *description && !hint.is_empty(),
        (Expect::Malformed { status }, Outcome::Malformed { status: s, hint }) => {
            s == status && !hint.is_empty()
        }
        _ => false,
    };
    (!ok).then(|| format!("expected {expect:?}\n     got {outcome:?}"))
}

#[test]
fn the_table_has_forty_sourced_vectors() {
    assert!(CASES.len() >= 40, "{} vectors", CASES.len());
    for case in CASES {
        assert!(
            case.source.starts_with("https://"),
            "{}: no source",
            case.name
        );
    }
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "vector names are unique");
}

#[test]
fn every_vector_reads_as_expected_in_wasmtime_and_natively() {
    let host = Host::new();
    let mut failures = Vec::new();
    for case in CASES {
        let wasm = in_wasmtime(&host, case);
        if let Some(why) = mismatch(&case.expect, &wasm) {
            failures.push(format!(
                "{} ({})\n  in wasmtime: {why}",
                case.name, case.source
            ));
        }
        let native = natively(case);
        if native != wasm {
            failures.push(format!(
                "{}: native {native:?} differs from wasm {wasm:?}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

//! The grant interface's functions: their signatures checked once per component, then found by
//! index in each call's instance, so instantiating type-checks nothing.
//!
//! The generated bindings type-check every export on every instantiation (`GuestIndices::load`),
//! which was a third of a fresh instance's cost in the step benchmark. So the exports are called
//! through this table instead, and each entry is checked at compile time against the generated
//! bindings' own method for it: a signature that differs from the WIT does not build.
//!
//! Adding an export: the WIT, its implementation in the component, one line in
//! [`grant_exports!`] below, and a method on `Instance`.

use std::marker::PhantomData;

use anyhow::{Context as _, anyhow};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower, TypedFunc,
};
use wasmtime::{AsContextMut, Store};

use crate::bindings::exports::integration::oauth2::grant::Guest;
use crate::bindings::{
    AuthorizationStart, ConfigProblem, ConnectionConfig, DeviceAuthorization, DevicePoll,
    HttpRequest, HttpResponse, OauthError, Pair, Revocation, TokenStep, WitToken,
};

/// The exported interface the host calls.
const INTERFACE: &str = "integration:oauth2/grant@0.2.0";

/// A function of the grant interface, with the Rust types the host passes and receives.
pub(crate) trait Export {
    const NAME: &'static str;
    type Params<'a>: ComponentNamedList + Lower;
    type Results: ComponentNamedList + Lift;
}

/// Declares each export once: its field in [`GrantExports`], its marker type, its WIT name, the
/// generated bindings' method it must match, its parameters and its result.
macro_rules! grant_exports {
    ($($field:ident: $marker:ident = $name:literal, $generated:ident(
        $($arg:ident: $ty:ty),*) -> $result:ty;)*) => {
        $(
            pub(crate) enum $marker {}

            impl Export for $marker {
                const NAME: &'static str = $name;
                type Params<'a> = ($($ty,)*);
                type Results = ($result,);
            }

            // Does not compile unless the generated bindings call this function with exactly
            // these parameter and result types.
            const _: () = {
                fn generated<'a>(
                    guest: &Guest,
                    store: &mut Store<()>,
                    ($($arg,)*): ($($ty,)*),
                ) -> wasmtime::Result<($result,)> {
                    guest.$generated(store, $($arg),*).map(|result| (result,))
                }
                let _: for<'a> fn(&Guest, &mut Store<()>, ($($ty,)*)) -> wasmtime::Result<($result,)> =
                    generated;
            };
        )*

        /// Every function of the grant interface, checked.
        pub(crate) struct GrantExports {
            $(pub(crate) $field: Checked<$marker>,)*
        }

        impl GrantExports {
            /// Finds and type-checks the interface in the component `pre` instantiates.
            pub(crate) fn new<T>(pre: &InstancePre<T>) -> anyhow::Result<Self> {
                let interface = pre
                    .component()
                    .get_export_index(None, INTERFACE)
                    .with_context(|| format!("the component does not export `{INTERFACE}`"))?;
                Ok(Self {
                    $($field: Checked::new(pre, &interface)?,)*
                })
            }
        }
    };
}

grant_exports! {
    validate_config: ValidateConfig = "validate-config",
        call_validate_config(config: &'a ConnectionConfig) -> Vec<ConfigProblem>;
    build_token_request: BuildTokenRequest = "build-token-request",
        call_build_token_request(config: &'a ConnectionConfig, step: &'a TokenStep)
            -> Result<HttpRequest, OauthError>;
    parse_token_response: ParseTokenResponse = "parse-token-response",
        call_parse_token_response(config: &'a ConnectionConfig, request: &'a HttpRequest,
            response: &'a HttpResponse) -> Result<WitToken, OauthError>;
    ensure_token: EnsureToken = "ensure-token",
        call_ensure_token(config: &'a ConnectionConfig) -> Result<WitToken, OauthError>;
    authorization_headers: AuthorizationHeaders = "authorization-headers",
        call_authorization_headers(config: &'a ConnectionConfig, url: &'a str)
            -> Result<Vec<Pair>, OauthError>;
    decorate_request: DecorateRequest = "decorate-request",
        call_decorate_request(config: &'a ConnectionConfig, request: &'a HttpRequest)
            -> Result<HttpRequest, OauthError>;
    begin_authorization: BeginAuthorization = "begin-authorization",
        call_begin_authorization(config: &'a ConnectionConfig)
            -> Result<AuthorizationStart, OauthError>;
    complete_authorization: CompleteAuthorization = "complete-authorization",
        call_complete_authorization(config: &'a ConnectionConfig, redirect_url: &'a str)
            -> Result<WitToken, OauthError>;
    forget_token: ForgetToken = "forget-token",
        call_forget_token(config: &'a ConnectionConfig, refused: Option<&'a str>)
            -> Result<(), OauthError>;
    start_device_authorization: StartDeviceAuthorization = "start-device-authorization",
        call_start_device_authorization(config: &'a ConnectionConfig)
            -> Result<DeviceAuthorization, OauthError>;
    poll_device_authorization: PollDeviceAuthorization = "poll-device-authorization",
        call_poll_device_authorization(config: &'a ConnectionConfig, device_code: &'a str)
            -> Result<DevicePoll, OauthError>;
    revoke_tokens: RevokeTokens = "revoke-tokens",
        call_revoke_tokens(config: &'a ConnectionConfig) -> Result<Revocation, OauthError>;
}

/// An export whose signature matched `E`'s types when the component was loaded.
pub(crate) struct Checked<E> {
    index: ComponentExportIndex,
    export: PhantomData<fn() -> E>,
}

impl<E: Export> Checked<E> {
    fn new<T>(pre: &InstancePre<T>, interface: &ComponentExportIndex) -> anyhow::Result<Self> {
        let (item, index) = pre
            .component()
            .get_export(Some(interface), E::NAME)
            .with_context(|| format!("`{INTERFACE}` has no function `{}`", E::NAME))?;
        let ComponentItem::ComponentFunc(func) = item else {
            return Err(anyhow!("`{INTERFACE}`'s `{}` is not a function", E::NAME));
        };
        // The check the generated bindings run on every instantiation (hence hidden from the
        // docs), run once: the types of a component's exports are the same in all its instances.
        func.typecheck::<E::Params<'static>, E::Results>(&pre.instance_type())
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{INTERFACE}`'s `{}` has another signature than this host's",
                    E::NAME
                )
            })?;
        Ok(Self {
            index,
            export: PhantomData,
        })
    }

    /// Calls the function in `instance`, an instance of the component this was checked for.
    pub(crate) fn call<T: 'static>(
        &self,
        store: &mut Store<T>,
        instance: &Instance,
        params: E::Params<'_>,
    ) -> wasmtime::Result<E::Results> {
        let func = instance
            .get_func(store.as_context_mut(), self.index)
            .ok_or_else(|| wasmtime::format_err!("the instance lacks `{}`", E::NAME))?;
        // SAFETY: `new` checked this export of the same component against exactly these
        // parameter and result types, as `TypedFunc::new_unchecked` requires.
        let typed = unsafe { TypedFunc::<E::Params<'_>, E::Results>::new_unchecked(func) };
        typed.call(store, params)
    }
}

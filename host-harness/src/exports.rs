//! The grant interface's functions: their signatures checked once per component, then found by
//! index in each call's instance, so instantiating type-checks nothing.
//!
//! The generated `Oauth2PluginPre::instantiate` type-checks all nine exports on every
//! instantiation, which was a third of a fresh instance's cost (BENCHMARKS.md).

use std::marker::PhantomData;

use anyhow::{Context as _, anyhow};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    ComponentExportIndex, ComponentNamedList, Instance, InstancePre, Lift, Lower, TypedFunc,
};
use wasmtime::{AsContextMut, Store};

use crate::bindings::{
    AuthorizationStart, ConfigProblem, ConnectionConfig, HttpRequest, HttpResponse, OauthError,
    Pair, TokenStep, WitToken,
};

/// The exported interface the host calls.
const INTERFACE: &str = "integration:oauth2/grant@0.2.0";

/// A function of the grant interface, with the Rust types the host passes and receives.
pub(crate) trait Export {
    const NAME: &'static str;
    type Params<'a>: ComponentNamedList + Lower;
    type Results: ComponentNamedList + Lift;
}

macro_rules! export {
    ($marker:ident = $name:literal, <$lt:lifetime> $params:ty => $result:ty) => {
        pub(crate) enum $marker {}

        impl Export for $marker {
            const NAME: &'static str = $name;
            type Params<$lt> = $params;
            type Results = ($result,);
        }
    };
}

export!(ValidateConfig = "validate-config", <'a> (&'a ConnectionConfig,) => Vec<ConfigProblem>);
export!(BuildTokenRequest = "build-token-request",
    <'a> (&'a ConnectionConfig, &'a TokenStep) => Result<HttpRequest, OauthError>);
export!(ParseTokenResponse = "parse-token-response",
    <'a> (&'a ConnectionConfig, &'a HttpResponse) => Result<WitToken, OauthError>);
export!(EnsureToken = "ensure-token", <'a> (&'a ConnectionConfig,) => Result<WitToken, OauthError>);
export!(DecorateRequest = "decorate-request",
    <'a> (&'a ConnectionConfig, &'a HttpRequest) => Result<HttpRequest, OauthError>);
export!(CachedDecoration = "cached-decoration",
    <'a> (&'a ConnectionConfig, &'a str) => Result<Option<Vec<Pair>>, OauthError>);
export!(BeginAuthorization = "begin-authorization",
    <'a> (&'a ConnectionConfig,) => Result<AuthorizationStart, OauthError>);
export!(CompleteAuthorization = "complete-authorization",
    <'a> (&'a ConnectionConfig, &'a str) => Result<WitToken, OauthError>);
export!(ForgetToken = "forget-token", <'a> (&'a ConnectionConfig,) => Result<(), OauthError>);

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

/// Every function of the grant interface, checked.
pub(crate) struct GrantExports {
    pub(crate) validate_config: Checked<ValidateConfig>,
    pub(crate) build_token_request: Checked<BuildTokenRequest>,
    pub(crate) parse_token_response: Checked<ParseTokenResponse>,
    pub(crate) ensure_token: Checked<EnsureToken>,
    pub(crate) decorate_request: Checked<DecorateRequest>,
    pub(crate) cached_decoration: Checked<CachedDecoration>,
    pub(crate) begin_authorization: Checked<BeginAuthorization>,
    pub(crate) complete_authorization: Checked<CompleteAuthorization>,
    pub(crate) forget_token: Checked<ForgetToken>,
}

impl GrantExports {
    /// Finds and type-checks the interface in the component `pre` instantiates.
    pub(crate) fn new<T>(pre: &InstancePre<T>) -> anyhow::Result<Self> {
        let interface = pre
            .component()
            .get_export_index(None, INTERFACE)
            .with_context(|| format!("the component does not export `{INTERFACE}`"))?;
        Ok(Self {
            validate_config: Checked::new(pre, &interface)?,
            build_token_request: Checked::new(pre, &interface)?,
            parse_token_response: Checked::new(pre, &interface)?,
            ensure_token: Checked::new(pre, &interface)?,
            decorate_request: Checked::new(pre, &interface)?,
            cached_decoration: Checked::new(pre, &interface)?,
            begin_authorization: Checked::new(pre, &interface)?,
            complete_authorization: Checked::new(pre, &interface)?,
            forget_token: Checked::new(pre, &interface)?,
        })
    }
}

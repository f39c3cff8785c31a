//! Reads the attribute arguments and the `impl` block into an `ObjectDef`: which
//! methods are exposed, how each one is called, and every diagnostic the macro
//! promises. It writes no code (that is `expand`), and it never guesses: what it
//! cannot dispatch is a compile error that says what to write instead.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use std::collections::BTreeMap;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, LitStr, Pat,
    PathArguments, ReturnType, Signature, Type, Visibility,
};

/// The name of the helper attribute on methods: `#[concoord(...)]`.
const HELPER: &str = "concoord";

const GENERIC_TYPE: &str = "an object type cannot be generic: the registry constructs it by \
     name, so write the impl for one concrete type (a type alias or a newtype works)";

/// Proxy method names the proxy itself already uses.
const PROXY_RESERVED: &[&str] = &["new", "into_inner"];

/// Collects every diagnostic, so a user sees all of them in one build.
#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.first.map_or(Ok(()), Err)
    }
}

/// Everything `expand` needs about one object type.
pub(crate) struct ObjectDef {
    /// The type the impl block is for, as written (`Counter`).
    pub(crate) self_ty: Type,
    /// Its last path segment, which names the proxy (`CounterClient`).
    pub(crate) ident: Ident,
    /// `ObjectType::TYPE_NAME`: the type's name, or `#[object(name = "...")]`.
    pub(crate) type_name: String,
    /// The exposed methods, in declaration order.
    pub(crate) methods: Vec<Method>,
    pub(crate) constructor: Option<Constructor>,
    /// The method marked `#[concoord(session_closed)]`.
    pub(crate) session_closed: Option<Ident>,
    /// The method marked `#[concoord(cancel)]`.
    pub(crate) cancel: Option<Ident>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `&mut self`: goes through the log.
    Command,
    /// `&self`: may be served without a log write.
    Query,
}

/// One exposed method.
pub(crate) struct Method {
    /// The Rust name, which the dispatch calls.
    pub(crate) ident: Ident,
    /// The name on the wire (what clients send, `MethodInfo::name`).
    pub(crate) wire: String,
    /// The typed proxy's method name: the wire name when it is a plain snake_case
    /// identifier other than `new` and `into_inner`, the Rust name otherwise
    /// (`__str__`, `getValue`).
    pub(crate) proxy_ident: Ident,
    pub(crate) kind: Kind,
    pub(crate) params: Vec<Param>,
    /// The declared return type (`()` when there is none).
    pub(crate) output: Type,
}

/// One declared parameter after the receiver.
pub(crate) enum Param {
    /// `&mut Ctx`: handed the call's context, not decoded from the client's arguments.
    Ctx,
    Arg(Box<Arg>),
}

/// A parameter the client passes.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    /// The argument's name on the wire (`MethodInfo::args`, error messages).
    pub(crate) name: String,
    pub(crate) ty: Type,
    /// `Option<T>`: the client may leave it out, as with a Python default of `None`.
    pub(crate) optional: bool,
}

impl Method {
    pub(crate) fn args(&self) -> impl Iterator<Item = &Arg> {
        args(&self.params)
    }
}

pub(crate) fn args(params: &[Param]) -> impl Iterator<Item = &Arg> {
    params.iter().filter_map(|p| match p {
        Param::Arg(arg) => Some(&**arg),
        Param::Ctx => None,
    })
}

/// The associated fn marked `#[concoord(constructor)]`.
pub(crate) struct Constructor {
    pub(crate) ident: Ident,
    pub(crate) params: Vec<Param>,
    /// Returns `Result<Self, ObjectError>` rather than `Self`.
    pub(crate) fallible: bool,
}

/// What the `#[concoord(...)]` attributes of one method say.
#[derive(Default)]
struct Marks {
    name: Option<LitStr>,
    constructor: Option<Span>,
    session_closed: Option<Span>,
    cancel: Option<Span>,
}

/// Parses `#[object(...)]`'s arguments: nothing, or `name = "..."`.
pub(crate) fn parse_args(attr: TokenStream, errors: &mut Errors) -> Option<LitStr> {
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if name.is_some() {
                return Err(syn::Error::new_spanned(
                    &meta.path,
                    "`name` is given twice: keep one `name = \"...\"`",
                ));
            }
            name = Some(lit);
            Ok(())
        } else {
            Err(syn::Error::new_spanned(
                &meta.path,
                format!(
                    "unknown `#[object(...)]` argument `{}`: the only argument is \
                     `name = \"...\"`, the type's name on the wire",
                    meta.path.to_token_stream()
                ),
            ))
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, attr) {
        errors.push(e);
    }
    if let Some(lit) = &name {
        if lit.value().is_empty() {
            errors.spanned(lit, "the type's wire name must not be empty");
        }
    }
    name
}

/// Reads the impl block, stripping its `#[concoord(...)]` attributes in place (the
/// compiler would reject them otherwise). Diagnostics go to `errors`.
pub(crate) fn read(name: Option<LitStr>, item: &mut ItemImpl, errors: &mut Errors) -> ObjectDef {
    let ident = check_impl(item, errors);
    let type_name = name.map_or_else(|| ident.unraw().to_string(), |lit| lit.value());
    let mut def = ObjectDef {
        self_ty: (*item.self_ty).clone(),
        ident,
        type_name,
        methods: Vec::new(),
        constructor: None,
        session_closed: None,
        cancel: None,
    };
    let mut wire_names: BTreeMap<String, Ident> = BTreeMap::new();
    let mut proxy_names: BTreeMap<String, Ident> = BTreeMap::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else {
            if let Some(attrs) = impl_item_attrs(impl_item) {
                for attr in take_helper_attrs(attrs) {
                    errors.spanned(
                        attr,
                        "`#[concoord(...)]` applies only to methods and associated fns",
                    );
                }
            }
            continue;
        };
        let marks = read_marks(&mut f.attrs, errors);
        if let Some(span) = marks.constructor {
            if marks.session_closed.is_some() || marks.cancel.is_some() || marks.name.is_some() {
                errors.push(syn::Error::new(
                    span,
                    "a constructor takes no other `#[concoord(...)]` key: \
                     remove `name`, `session_closed` or `cancel`",
                ));
            }
            if let Some(ctor) = read_constructor(f, &def, errors) {
                if let Some(first) = &def.constructor {
                    errors.spanned(
                        &f.sig.ident,
                        format!(
                            "an object has at most one `#[concoord(constructor)]`, \
                             and `{}` is already it: remove one of the two marks",
                            first.ident
                        ),
                    );
                } else {
                    def.constructor = Some(ctor);
                }
            }
            continue;
        }
        if let Some(span) = marks.cancel {
            if marks.session_closed.is_some() || marks.name.is_some() {
                errors.push(syn::Error::new(
                    span,
                    "the `cancel` method takes no other `#[concoord(...)]` key: \
                     remove `name` or `session_closed`",
                ));
            }
            if check_cancel(f, errors) {
                if let Some(first) = &def.cancel {
                    errors.spanned(
                        &f.sig.ident,
                        format!(
                            "an object has at most one `#[concoord(cancel)]` method, \
                             and `{first}` is already it: do both jobs in one method"
                        ),
                    );
                } else {
                    def.cancel = Some(f.sig.ident.clone());
                }
            }
            continue;
        }
        if marks.session_closed.is_some() {
            if let Some(lit) = &marks.name {
                errors.spanned(
                    lit,
                    "the `session_closed` method is not callable by clients, so it has \
                     no wire name: remove `name = ...`",
                );
            }
            if check_session_closed(f, errors) {
                if let Some(first) = &def.session_closed {
                    errors.spanned(
                        &f.sig.ident,
                        format!(
                            "an object has at most one `#[concoord(session_closed)]` \
                             method, and `{first}` is already it: do both jobs in one method"
                        ),
                    );
                } else {
                    def.session_closed = Some(f.sig.ident.clone());
                }
            }
            continue;
        }
        let exposed = matches!(f.vis, Visibility::Public(_)) && f.sig.receiver().is_some();
        if !exposed {
            if let Some(lit) = &marks.name {
                errors.spanned(
                    lit,
                    "only exposed methods have a wire name, and exposed methods are the \
                     `pub fn`s with a `self` receiver: make this method `pub` or remove \
                     `name = ...`",
                );
            }
            continue;
        }
        let Some(method) = read_method(f, marks.name, errors) else {
            continue;
        };
        if let Some(first) = wire_names.get(&method.wire) {
            errors.spanned(
                &f.sig.ident,
                format!(
                    "two methods have the wire name `{}` (`{first}` and `{}`): rename one \
                     with `#[concoord(name = \"...\")]`",
                    method.wire, method.ident
                ),
            );
            continue;
        }
        wire_names.insert(method.wire.clone(), method.ident.clone());
        let proxy_name = method.proxy_ident.unraw().to_string();
        if PROXY_RESERVED.contains(&proxy_name.as_str()) {
            errors.spanned(
                &f.sig.ident,
                format!(
                    "the typed proxy already has a method `{proxy_name}`: give this method \
                     another Rust name and keep its wire name with \
                     `#[concoord(name = \"{}\")]`",
                    method.wire
                ),
            );
            continue;
        }
        if let Some(first) = proxy_names.get(&proxy_name) {
            errors.spanned(
                &f.sig.ident,
                format!(
                    "the typed proxy would have two methods named `{proxy_name}` (for `{first}` \
                     and `{}`): proxy methods take the wire name when it is a snake_case \
                     identifier and the Rust name otherwise, so rename one of them",
                    method.ident
                ),
            );
            continue;
        }
        proxy_names.insert(proxy_name, method.ident.clone());
        def.methods.push(method);
    }
    def
}

/// Checks that the block is `impl Type { ... }` for a plain, non-generic type, and
/// returns the type's identifier (a placeholder when it is not).
fn check_impl(item: &ItemImpl, errors: &mut Errors) -> Ident {
    if let Some((_, path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "#[concoord_object::object] goes on an inherent `impl Type { ... }` block, not \
             on a trait impl: the macro writes the `Object` impl itself",
        );
    }
    let generic = !item.generics.params.is_empty() || item.generics.where_clause.is_some();
    if generic {
        errors.spanned(&item.generics, GENERIC_TYPE);
    }
    let fallback = Ident::new("Object", item.self_ty.span());
    let Type::Path(path) = strip_group(&item.self_ty) else {
        errors.spanned(
            &item.self_ty,
            "#[concoord_object::object] goes on `impl Type { ... }` for a struct or enum \
             named by a path",
        );
        return fallback;
    };
    let Some(last) = path.path.segments.last() else {
        return fallback;
    };
    let has_arguments = path.path.segments.iter().any(|s| !s.arguments.is_none());
    if !generic && (path.qself.is_some() || has_arguments) {
        errors.spanned(&item.self_ty, GENERIC_TYPE);
    }
    last.ident.clone()
}

fn impl_item_attrs(item: &mut ImplItem) -> Option<&mut Vec<Attribute>> {
    match item {
        ImplItem::Const(c) => Some(&mut c.attrs),
        ImplItem::Type(t) => Some(&mut t.attrs),
        ImplItem::Macro(m) => Some(&mut m.attrs),
        _ => None,
    }
}

fn take_helper_attrs(attrs: &mut Vec<Attribute>) -> Vec<Attribute> {
    let (helpers, rest) =
        std::mem::take(attrs).into_iter().partition(|a| a.path().is_ident(HELPER));
    *attrs = rest;
    helpers
}

/// Removes and parses the `#[concoord(...)]` attributes of a method.
fn read_marks(attrs: &mut Vec<Attribute>, errors: &mut Errors) -> Marks {
    let mut marks = Marks::default();
    for attr in take_helper_attrs(attrs) {
        let result = attr.parse_nested_meta(|meta| {
            let duplicate = || {
                syn::Error::new_spanned(
                    &meta.path,
                    format!("`{}` is given twice: keep one", meta.path.to_token_stream()),
                )
            };
            if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if marks.name.is_some() {
                    return Err(duplicate());
                }
                if lit.value().is_empty() {
                    return Err(syn::Error::new_spanned(&lit, "a wire name must not be empty"));
                }
                marks.name = Some(lit);
            } else if meta.path.is_ident("constructor") {
                if marks.constructor.is_some() {
                    return Err(duplicate());
                }
                marks.constructor = Some(meta.path.span());
            } else if meta.path.is_ident("session_closed") {
                if marks.session_closed.is_some() {
                    return Err(duplicate());
                }
                marks.session_closed = Some(meta.path.span());
            } else if meta.path.is_ident("cancel") {
                if marks.cancel.is_some() {
                    return Err(duplicate());
                }
                marks.cancel = Some(meta.path.span());
            } else {
                return Err(syn::Error::new_spanned(
                    &meta.path,
                    format!(
                        "unknown `#[concoord(...)]` key `{}`: the keys are \
                         `name = \"...\"` (wire name), `constructor`, `session_closed` \
                         and `cancel`",
                        meta.path.to_token_stream()
                    ),
                ));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    marks
}

/// Checks the shape every dispatched fn shares: not generic, not async.
fn check_plain_fn(sig: &Signature, what: &str, errors: &mut Errors) -> bool {
    let mut ok = true;
    if let Some(token) = &sig.asyncness {
        errors.spanned(
            token,
            format!(
                "{what} cannot be `async`: an object method runs to completion inside one \
                 log entry; to make a caller wait, store `ctx.call()` and return \
                 `Blocking::Park`, then wake it later with `ctx.wake`"
            ),
        );
        ok = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.spanned(
            &sig.generics,
            format!(
                "{what} cannot be generic: the dispatch decodes each argument into one \
                 concrete type, so name the types"
            ),
        );
        ok = false;
    }
    for input in &sig.inputs {
        if let FnArg::Typed(pat) = input {
            if let Type::ImplTrait(_) = strip_group(&pat.ty) {
                errors.spanned(
                    &pat.ty,
                    format!(
                        "{what} cannot be generic (`impl Trait` arguments are generic too): \
                         the dispatch decodes each argument into one concrete type"
                    ),
                );
                ok = false;
            }
        }
    }
    ok
}

fn read_constructor(f: &ImplItemFn, def: &ObjectDef, errors: &mut Errors) -> Option<Constructor> {
    let sig = &f.sig;
    let mut ok = check_plain_fn(sig, "a constructor", errors);
    if let Some(receiver) = sig.receiver() {
        errors.spanned(
            receiver,
            "a `#[concoord(constructor)]` is an associated fn without `self` that returns \
             the new object: remove the receiver",
        );
        ok = false;
    }
    let fallible = match constructor_return(&sig.output, &def.ident) {
        Some(fallible) => fallible,
        None => {
            let tokens: &dyn ToTokens = match &sig.output {
                ReturnType::Default => &sig.ident,
                ReturnType::Type(_, ty) => ty,
            };
            errors.spanned(
                tokens,
                "a `#[concoord(constructor)]` returns `Self` or \
                 `Result<Self, ObjectError>`",
            );
            ok = false;
            false
        }
    };
    let params = read_params(sig, errors)?;
    if params.iter().any(|p| matches!(p, Param::Ctx)) {
        errors.spanned(
            &sig.inputs,
            "a constructor gets no `Ctx`: it builds the initial state from its arguments \
             alone; remove the `&mut Ctx` parameter",
        );
        ok = false;
    }
    ok.then(|| Constructor { ident: sig.ident.clone(), params, fallible })
}

/// `Some(false)` for `Self`, `Some(true)` for `Result<Self, _>`, `None` otherwise.
fn constructor_return(output: &ReturnType, ident: &Ident) -> Option<bool> {
    let ReturnType::Type(_, ty) = output else {
        return None;
    };
    let is_self = |ty: &Type| match strip_group(ty) {
        Type::Path(p) => p.qself.is_none() && (p.path.is_ident("Self") || p.path.is_ident(ident)),
        _ => false,
    };
    if is_self(ty) {
        return Some(false);
    }
    match generic_arg(ty, "Result") {
        Some(inner) if is_self(inner) => Some(true),
        _ => None,
    }
}

fn check_session_closed(f: &ImplItemFn, errors: &mut Errors) -> bool {
    check_hook(f, "session_closed", "session: SessionId)", false, errors)
}

fn check_cancel(f: &ImplItemFn, errors: &mut Errors) -> bool {
    check_hook(f, "cancel", "call: CallId) -> bool", true, errors)
}

/// The hooks the machine calls (`session_closed`, `cancel`) share one shape:
/// `fn(&mut self, ctx: &mut Ctx, <one argument>)`, returning `bool` when `returns_bool`.
fn check_hook(
    f: &ImplItemFn,
    key: &str,
    rest: &str,
    returns_bool: bool,
    errors: &mut Errors,
) -> bool {
    let sig = &f.sig;
    let ok = check_plain_fn(sig, &format!("the `{key}` method"), errors);
    let receiver_ok = matches!(receiver_kind(sig), Some(Ok(Kind::Command)));
    let params = read_params(sig, errors);
    let params_ok = matches!(params.as_deref(), Some([Param::Ctx, Param::Arg(_)]));
    let output_ok = !returns_bool
        || matches!(&sig.output, ReturnType::Type(_, ty) if is_path_named(ty, "bool"));
    if !receiver_ok || !params_ok || !output_ok {
        errors.spanned(
            sig,
            format!(
                "a `#[concoord({key})]` method has the signature \
                 `fn(&mut self, ctx: &mut Ctx, {rest}`"
            ),
        );
        return false;
    }
    ok
}

/// `&self` → query, `&mut self` → command, `self` by value → `Err`; `None` for an
/// associated fn.
fn receiver_kind(sig: &Signature) -> Option<Result<Kind, ()>> {
    let receiver = sig.receiver()?;
    let mutability = if receiver.colon_token.is_none() {
        receiver.reference.as_ref().map(|_| receiver.mutability.is_some())
    } else {
        // `self: &Self` / `self: &mut Self`.
        match strip_group(&receiver.ty) {
            Type::Reference(r) if is_path_named(&r.elem, "Self") => Some(r.mutability.is_some()),
            _ => None,
        }
    };
    Some(match mutability {
        Some(true) => Ok(Kind::Command),
        Some(false) => Ok(Kind::Query),
        None => Err(()),
    })
}

fn read_method(f: &ImplItemFn, name: Option<LitStr>, errors: &mut Errors) -> Option<Method> {
    let sig = &f.sig;
    let mut ok = check_plain_fn(sig, "an exposed method", errors);
    let kind = match receiver_kind(sig) {
        Some(Ok(kind)) => kind,
        _ => {
            let receiver: &dyn ToTokens = match sig.receiver() {
                Some(r) => r,
                None => &sig.ident,
            };
            errors.spanned(
                receiver,
                "an exposed method takes `&mut self` (a command) or `&self` (a query), not \
                 `self` by value: the object lives on in the replica after the call",
            );
            ok = false;
            Kind::Command
        }
    };
    let params = read_params(sig, errors)?;
    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Type::ImplTrait(_) = strip_group(&output) {
        errors.spanned(
            &output,
            "an exposed method returns a concrete type, which the typed proxy decodes: \
             name it instead of `impl Trait`",
        );
        ok = false;
    }
    if kind == Kind::Query {
        if params.iter().any(|p| matches!(p, Param::Ctx)) {
            errors.spanned(
                &sig.inputs,
                "a query (`&self` method) gets no `Ctx`: queries may be served without a \
                 log entry, so there is no slot, timestamp or wake; take `&mut self` to \
                 make it a command, or drop the `&mut Ctx` parameter",
            );
            ok = false;
        }
        let success = generic_arg(&output, "Result").unwrap_or(&output);
        if is_path_named(success, "Blocking") {
            errors.spanned(
                &output,
                "a query (`&self` method) cannot park its caller: only commands go through \
                 the log, where a parked call waits; take `&mut self` to make it a command",
            );
            ok = false;
        }
    }
    let wire = name.as_ref().map_or_else(|| sig.ident.unraw().to_string(), LitStr::value);
    let proxy_ident = if is_snake_ident(&wire) && !PROXY_RESERVED.contains(&wire.as_str()) {
        Ident::new(&wire, name.as_ref().map_or(sig.ident.span(), LitStr::span))
    } else {
        sig.ident.clone()
    };
    ok.then(|| Method { ident: sig.ident.clone(), wire, proxy_ident, kind, params, output })
}

/// Reads the parameters after the receiver; `None` (with errors) if one cannot be
/// dispatched.
fn read_params(sig: &Signature, errors: &mut Errors) -> Option<Vec<Param>> {
    let mut params = Vec::new();
    let mut ok = true;
    let mut ctx_seen = false;
    for input in &sig.inputs {
        let FnArg::Typed(pat_type) = input else {
            continue;
        };
        match ctx_use(&pat_type.ty) {
            CtxUse::MutRef => {
                if ctx_seen {
                    errors.spanned(pat_type, "`&mut Ctx` is declared twice: keep one");
                    ok = false;
                }
                ctx_seen = true;
                params.push(Param::Ctx);
                continue;
            }
            CtxUse::Other => {
                errors.spanned(
                    &pat_type.ty,
                    "the call context is passed as `&mut Ctx` (or `&mut Ctx<'_>`)",
                );
                ok = false;
                continue;
            }
            CtxUse::None => {}
        }
        let Pat::Ident(pat_ident) = &*pat_type.pat else {
            errors.spanned(
                &pat_type.pat,
                "an argument needs a plain name (it is the argument's name on the wire and \
                 in the proxy), not a pattern: write `name: Type` and destructure inside",
            );
            ok = false;
            continue;
        };
        if pat_ident.by_ref.is_some() || pat_ident.subpat.is_some() {
            errors.spanned(&pat_type.pat, "an argument needs a plain name: write `name: Type`");
            ok = false;
            continue;
        }
        params.push(Param::Arg(Box::new(Arg {
            ident: pat_ident.ident.clone(),
            name: pat_ident.ident.unraw().to_string(),
            ty: (*pat_type.ty).clone(),
            optional: is_path_named(&pat_type.ty, "Option"),
        })));
    }
    ok.then_some(params)
}

enum CtxUse {
    None,
    /// `&mut Ctx`, `&mut Ctx<'_>`, `&mut concoord_object::Ctx<'a>`.
    MutRef,
    /// `Ctx` some other way (`&Ctx`, by value): an error.
    Other,
}

fn ctx_use(ty: &Type) -> CtxUse {
    match strip_group(ty) {
        Type::Reference(r) if is_path_named(&r.elem, "Ctx") => {
            if r.mutability.is_some() {
                CtxUse::MutRef
            } else {
                CtxUse::Other
            }
        }
        ty if is_path_named(ty, "Ctx") => CtxUse::Other,
        _ => CtxUse::None,
    }
}

/// Whether `ty` is a path whose last segment is `name` (`Option<T>`, `std::option::Option<T>`).
fn is_path_named(ty: &Type, name: &str) -> bool {
    match strip_group(ty) {
        Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == name)
        }
        _ => false,
    }
}

/// `T` of `Name<T, ...>`.
pub(crate) fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = strip_group(ty) else {
        return None;
    };
    let last = p.path.segments.last()?;
    if p.qself.is_some() || last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Types that come through `macro_rules!` may be wrapped in invisible groups.
fn strip_group(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => strip_group(&g.elem),
        Type::Paren(p) => strip_group(&p.elem),
        ty => ty,
    }
}

/// A lowercase snake_case identifier that is not a keyword and does not start with
/// `_`: the wire names a proxy method can carry as is.
fn is_snake_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && syn::parse_str::<Ident>(s).is_ok()
}

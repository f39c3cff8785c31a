//! Writes the code for an `ObjectDef`: the `Object` impl (dispatch by wire name,
//! queries, `session_closed`, snapshot), the `ObjectType` impl (construct, restore)
//! and the typed client proxy `TypeClient<C: Call>`. It validates nothing itself;
//! `model` has already turned every unsupported shape into a diagnostic.

use crate::model::{self, Arg, Errors, Kind, Method, ObjectDef, Param};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, LitStr};

/// The whole attribute: parse, check, generate. On any error it emits the user's
/// item (stripped of helper attributes) with the errors, so one mistake does not
/// cascade into unrelated "cannot find" errors.
pub(crate) fn object(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let name = model::parse_args(attr, &mut errors);
    let item: Item = match syn::parse2(item) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let Item::Impl(mut item) = item else {
        let error = syn::Error::new_spanned(
            &item,
            "#[concoord_object::object] goes on an inherent `impl Type { ... }` block \
             (the struct itself derives `Debug`, `Serialize` and `Deserialize`)",
        );
        let error = error.to_compile_error();
        return quote!(#item #error);
    };
    let def = model::read(name, &mut item, &mut errors);
    if let Err(e) = errors.finish() {
        let error = e.to_compile_error();
        return quote!(#item #error);
    }
    let object_impl = object_impl(&def);
    let object_type_impl = object_type_impl(&def);
    let proxy = proxy(&def);
    quote! {
        #item
        #object_impl
        #object_type_impl
        #proxy
    }
}

fn object_impl(def: &ObjectDef) -> TokenStream {
    let self_ty = &def.self_ty;
    let infos = def.methods.iter().map(|m| {
        let name = &m.wire;
        let kind = match m.kind {
            Kind::Command => quote!(Command),
            Kind::Query => quote!(Query),
        };
        let args = m.args().map(|a| &a.name);
        quote! {
            ::concoord_object::MethodInfo {
                name: #name,
                kind: ::concoord_object::MethodKind::#kind,
                args: &[#(#args),*],
            }
        }
    });
    let call = call_fn(def);
    let query = query_fn(def);
    let session_closed = match &def.session_closed {
        Some(ident) => quote! {
            fn session_closed(
                &mut self,
                ctx: &mut ::concoord_object::Ctx<'_>,
                session: ::concoord_object::__private::SessionId,
            ) {
                Self::#ident(self, ctx, session)
            }
        },
        None => quote! {
            fn session_closed(
                &mut self,
                _ctx: &mut ::concoord_object::Ctx<'_>,
                _session: ::concoord_object::__private::SessionId,
            ) {
            }
        },
    };
    let cancel = def.cancel.as_ref().map(|ident| {
        quote! {
            fn cancel(
                &mut self,
                ctx: &mut ::concoord_object::Ctx<'_>,
                call: ::concoord_object::CallId,
            ) -> bool {
                Self::#ident(self, ctx, call)
            }
        }
    });
    quote! {
        impl ::concoord_object::Object for #self_ty {
            fn type_name(&self) -> &'static str {
                <Self as ::concoord_object::ObjectType>::TYPE_NAME
            }

            fn methods(&self) -> &'static [::concoord_object::MethodInfo] {
                const METHODS: &[::concoord_object::MethodInfo] = &[#(#infos),*];
                METHODS
            }

            #call
            #query
            #session_closed
            #cancel

            fn snapshot(
                &self,
            ) -> ::std::result::Result<::std::vec::Vec<u8>, ::concoord_object::ObjectError> {
                ::concoord_object::encode_state(self)
            }
        }
    }
}

/// `Object::call`: every exposed method, commands and queries alike.
fn call_fn(def: &ObjectDef) -> TokenStream {
    let arms = def.methods.iter().map(|m| {
        let wire = &m.wire;
        let ident = &m.ident;
        let decode =
            decode_args(wire, &m.params, |e| quote!(::concoord_object::Outcome::Raise(#e)));
        let call_args = call_args(&m.params);
        let into_outcome = into_outcome(m);
        quote! {
            #wire => {
                #decode
                #into_outcome(Self::#ident(self, #call_args))
            }
        }
    });
    let uses_ctx = def.methods.iter().any(|m| m.params.iter().any(|p| matches!(p, Param::Ctx)));
    let ctx = if uses_ctx { quote!(ctx) } else { quote!(_ctx) };
    let unknown = quote! {
        ::concoord_object::Outcome::Raise(::concoord_object::ObjectError::attribute_error(
            ::std::format!(
                "'{}' object has no attribute '{}'",
                <Self as ::concoord_object::ObjectType>::TYPE_NAME,
                method,
            ),
        ))
    };
    // With nothing exposed, a bare `match` would have one arm and `args` no use.
    let (args, body) = if def.methods.is_empty() {
        (quote!(_args), unknown)
    } else {
        (quote!(args), quote!(match method { #(#arms)* _ => #unknown }))
    };
    quote! {
        fn call(
            &mut self,
            #ctx: &mut ::concoord_object::Ctx<'_>,
            method: &str,
            #args: &[::concoord_object::Value],
        ) -> ::concoord_object::Outcome {
            #body
        }
    }
}

/// `Object::query`: the `&self` methods; `None` for commands and unknown names.
fn query_fn(def: &ObjectDef) -> TokenStream {
    let queries: Vec<&Method> = def.methods.iter().filter(|m| m.kind == Kind::Query).collect();
    let signature = |method: TokenStream, args: TokenStream| {
        quote! {
            fn query(
                &self,
                #method: &str,
                #args: &[::concoord_object::Value],
            ) -> ::std::option::Option<
                ::std::result::Result<::concoord_object::Value, ::concoord_object::ObjectError>,
            >
        }
    };
    if queries.is_empty() {
        let signature = signature(quote!(_method), quote!(_args));
        return quote!(#signature { ::std::option::Option::None });
    }
    let arms = queries.iter().map(|m| {
        let wire = &m.wire;
        let ident = &m.ident;
        let decode = decode_args(
            wire,
            &m.params,
            |e| quote!(::std::option::Option::Some(::std::result::Result::Err(#e))),
        );
        let call_args = call_args(&m.params);
        let into_outcome = into_outcome(m);
        let park = format!("query {wire}() tried to park its caller; only commands can park");
        quote! {
            #wire => {
                #decode
                ::std::option::Option::Some(match #into_outcome(Self::#ident(self, #call_args)) {
                    ::concoord_object::Outcome::Return(value) => ::std::result::Result::Ok(value),
                    ::concoord_object::Outcome::Raise(error) => ::std::result::Result::Err(error),
                    ::concoord_object::Outcome::Park => ::std::result::Result::Err(
                        ::concoord_object::ObjectError::runtime_error(#park),
                    ),
                })
            }
        }
    });
    let signature = signature(quote!(method), quote!(args));
    quote! {
        #signature {
            match method {
                #(#arms)*
                _ => ::std::option::Option::None,
            }
        }
    }
}

/// `<R as IntoOutcome>::into_outcome`, spanned at the return type so that a type
/// that cannot be a result is reported there.
fn into_outcome(m: &Method) -> TokenStream {
    let output = &m.output;
    quote_spanned!(output.span()=> <#output as ::concoord_object::IntoOutcome>::into_outcome)
}

/// Statements that check the argument count and bind `__concoord_arg_N` for each
/// client argument, returning `on_error(error)` from the enclosing fn on failure.
fn decode_args(
    method: &str,
    params: &[Param],
    on_error: impl Fn(TokenStream) -> TokenStream,
) -> TokenStream {
    let count = model::args(params).count();
    let arity_error = on_error(quote!(error));
    let mut statements = quote! {
        if let ::std::result::Result::Err(error) = ::concoord_object::arity(#method, args, #count) {
            return #arity_error;
        }
    };
    for (index, arg) in model::args(params).enumerate() {
        let var = arg_var(index);
        let decode = decode_arg(method, index, arg);
        let ty = &arg.ty;
        let error = on_error(quote!(error));
        statements.extend(quote! {
            let #var: #ty = match #decode {
                ::std::result::Result::Ok(value) => value,
                ::std::result::Result::Err(error) => return #error,
            };
        });
    }
    statements
}

/// An expression of type `Result<T, ObjectError>` decoding argument `index`. An
/// `Option<T>` argument the client left out decodes as `None`, like a Python default.
fn decode_arg(method: &str, index: usize, arg: &Arg) -> TokenStream {
    let ty = &arg.ty;
    let name = &arg.name;
    // Spanned at the type, so `T: FromValue` not holding points at the parameter.
    let arg_fn = quote_spanned!(ty.span()=> ::concoord_object::arg::<#ty>);
    if arg.optional {
        quote! {
            if #index < args.len() {
                #arg_fn(#method, args, #index, #name)
            } else {
                #arg_fn(#method, &[::concoord_object::Value::Nil], 0, #name)
            }
        }
    } else {
        quote!(#arg_fn(#method, args, #index, #name))
    }
}

/// The arguments of the call to the user's method, in declaration order.
fn call_args(params: &[Param]) -> TokenStream {
    let mut index = 0;
    let args = params.iter().map(|p| match p {
        Param::Ctx => quote!(ctx),
        Param::Arg(_) => {
            let var = arg_var(index);
            index += 1;
            quote!(#var)
        }
    });
    quote!(#(#args),*)
}

fn arg_var(index: usize) -> Ident {
    format_ident!("__concoord_arg_{}", index)
}

fn object_type_impl(def: &ObjectDef) -> TokenStream {
    let self_ty = &def.self_ty;
    let type_name = &def.type_name;
    let construct = match &def.constructor {
        Some(ctor) => {
            let ident = &ctor.ident;
            let decode =
                decode_args(type_name, &ctor.params, |e| quote!(::std::result::Result::Err(#e)));
            let call_args = call_args(&ctor.params);
            let body = if ctor.fallible {
                quote!(Self::#ident(#call_args))
            } else {
                quote!(::std::result::Result::Ok(Self::#ident(#call_args)))
            };
            quote! {
                fn construct(
                    args: &[::concoord_object::Value],
                ) -> ::std::result::Result<Self, ::concoord_object::ObjectError> {
                    #decode
                    #body
                }
            }
        }
        None => {
            let default =
                quote_spanned!(self_ty.span()=> <#self_ty as ::std::default::Default>::default);
            quote! {
                fn construct(
                    args: &[::concoord_object::Value],
                ) -> ::std::result::Result<Self, ::concoord_object::ObjectError> {
                    ::concoord_object::arity(#type_name, args, 0)?;
                    ::std::result::Result::Ok(#default())
                }
            }
        }
    };
    quote! {
        impl ::concoord_object::ObjectType for #self_ty {
            const TYPE_NAME: &'static str = #type_name;

            #construct

            fn restore(bytes: &[u8]) -> ::std::result::Result<Self, ::concoord_object::ObjectError> {
                ::concoord_object::decode_state(bytes)
            }
        }
    }
}

fn proxy(def: &ObjectDef) -> TokenStream {
    let ident = &def.ident;
    let client = format_ident!("{}Client", ident);
    let struct_doc = LitStr::new(
        &format!(
            "Typed client proxy for `{ident}` (wire type `{}`): one method per exposed \
             method, each sent through a `Call`. Generated by `#[concoord_object::object]`.",
            def.type_name
        ),
        ident.span(),
    );
    let methods = def.methods.iter().map(proxy_method);
    quote! {
        #[doc = #struct_doc]
        #[derive(Debug)]
        pub struct #client<C: ::concoord_object::Call> {
            call: C,
            object: ::std::string::String,
        }

        impl<C: ::concoord_object::Call> #client<C> {
            /// A proxy for the object instance named `object`, calling through `call`.
            pub fn new(call: C, object: impl ::std::convert::Into<::std::string::String>) -> Self {
                Self { call, object: object.into() }
            }

            /// Gives back the `Call` this proxy sends through.
            pub fn into_inner(self) -> C {
                self.call
            }

            #(#methods)*
        }
    }
}

fn proxy_method(m: &Method) -> TokenStream {
    let name = &m.proxy_ident;
    let wire = &m.wire;
    let success = proxy_success_type(&m.output);
    let params = m.args().map(|a| {
        let ident = &a.ident;
        let ty = &a.ty;
        quote!(#ident: #ty)
    });
    let values = m.args().map(|a| {
        let ident = &a.ident;
        let into_value = quote_spanned!(a.ty.span()=> ::concoord_object::IntoValue::into_value);
        quote!(#into_value(#ident))
    });
    let doc = LitStr::new(
        &format!(
            "Calls `{wire}` ({}).",
            match m.kind {
                Kind::Command => "a command",
                Kind::Query => "a query",
            }
        ),
        name.span(),
    );
    // The proxy mirrors the object's own signature; a long one is the object's choice.
    let allow_many = (m.args().count() >= 7).then(|| quote!(#[allow(clippy::too_many_arguments)]));
    // The proxy keeps the object's argument names, and sends even an argument the
    // object ignores (`_unused: T`), so it uses a binding the object named unused.
    let allow_underscore = m
        .args()
        .any(|a| a.name.starts_with('_'))
        .then(|| quote!(#[allow(clippy::used_underscore_binding)]));
    let from_value =
        quote_spanned!(success.span()=> <#success as ::concoord_object::FromValue>::from_value);
    let unexpected = format!("{wire}() returned an unexpected value: {{}}");
    quote! {
        #[doc = #doc]
        #allow_many
        #allow_underscore
        pub fn #name(
            &mut self,
            #(#params),*
        ) -> ::std::result::Result<#success, ::concoord_object::CallError> {
            let value = ::concoord_object::Call::invoke(
                &mut self.call,
                &self.object,
                #wire,
                ::std::vec![#(#values),*],
            )?;
            #from_value(&value).map_err(|error| {
                ::concoord_object::CallError::Raised(::concoord_object::ObjectError::type_error(
                    ::std::format!(#unexpected, error.message),
                ))
            })
        }
    }
}

/// What the client gets back on success: the return type without its
/// `Result<_, ObjectError>` and `Blocking<_>` wrappers.
fn proxy_success_type(output: &syn::Type) -> syn::Type {
    let ty = model::generic_arg(output, "Result").unwrap_or(output);
    let ty = model::generic_arg(ty, "Blocking").unwrap_or(ty);
    ty.clone()
}

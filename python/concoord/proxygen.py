"""``python3 -m concoord.proxygen -o module.Class [-t TOKEN] [-p TYPE] [-s] [-v]``:
writes a client proxy module for a hosted Python class (what ``concoord object``
runs).

The proxy module is ``<module>proxy.py`` next to the module's file (in the
current directory for a module of an installed package). It is the
module with the class's methods replaced by calls to the replicas: each keeps its
name and signature (defaults included, ``_concoord_command`` removed) and forwards
its positional parameters and ``*args``. ``__init__(bootstrap, timeout=60,
debug=False, token=TOKEN)`` connects; ``__concoordinit__(*args)`` re-initialises the
replicated object. ``-p 0``/``1`` give a synchronous proxy, ``-p 2`` a batching
one (methods return futures), ``-p 3`` an asyncio one. Everything else in the module (imports, helper classes,
functions) is kept. ``-s`` refuses a class whose code is not deterministic, naming
each line and reason.

What it deliberately is not: a sandbox or a proof. ``-s`` catches the usual ways to
break determinism (clock, randomness, IO, threads, processes, ``id``/``hash``,
``eval``), not every one.
"""

import argparse
import ast
import importlib.util
import os
import sys

# Modules whose use makes a method differ from replica to replica.
UNSAFE_MODULES = {
    "time": "reads the clock",
    "datetime": "reads the clock",
    "random": "draws random numbers",
    "secrets": "draws random numbers",
    "uuid": "draws random identifiers",
    "os": "reaches the operating system (files, environment, processes)",
    "sys": "reaches the interpreter's state",
    "socket": "does network IO",
    "select": "does IO",
    "subprocess": "starts processes",
    "multiprocessing": "starts processes",
    "threading": "starts threads (and its locks cannot be pickled)",
    "asyncio": "runs concurrent code",
    "shutil": "does file IO",
    "tempfile": "does file IO",
    "pathlib": "does file IO",
    "urllib": "does network IO",
    "http": "does network IO",
    "requests": "does network IO",
}
UNSAFE_CALLS = {
    "open": "does file IO",
    "input": "reads the terminal",
    "print": "writes output (harmless on the replicas, but a sign of IO)",
    "eval": "runs code built at run time",
    "exec": "runs code built at run time",
    "compile": "runs code built at run time",
    "__import__": "imports at run time",
    "id": "depends on memory addresses",
    "hash": "depends on memory addresses for most objects",
    "globals": "reaches module state",
    "vars": "reaches module state",
}
CALLABLE_DUNDERS = {
    "__str__", "__repr__", "__len__", "__contains__", "__getitem__", "__setitem__", "__delitem__",
}
RUNTIMES = {
    0: "from concoord.clientproxy import ClientProxy",
    1: "from concoord.blockingclientproxy import ClientProxy",
    2: "from concoord.batchclientproxy import ClientProxy",
    3: "from concoord.aio import Client as _ConCoordClient",
}


class Problem(Exception):
    pass


def find_source(module_name):
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as e:
        raise Problem("cannot find module %s: %s" % (module_name, e))
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise Problem(
            "cannot find the source of module %s (run from its directory, or put it on "
            "PYTHONPATH)" % module_name
        )
    return spec.origin


def safety_problems(tree):
    """[(line, reason)] for what makes the module's code nondeterministic."""
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in UNSAFE_MODULES:
                    problems.append((node.lineno, "imports %s, which %s" % (alias.name, UNSAFE_MODULES[root])))
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in UNSAFE_MODULES:
                problems.append((node.lineno, "imports from %s, which %s" % (node.module, UNSAFE_MODULES[root])))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in UNSAFE_CALLS:
                problems.append((node.lineno, "calls %s(), which %s" % (node.func.id, UNSAFE_CALLS[node.func.id])))
        elif isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.iter, (ast.Set, ast.SetComp)):
            line = node.lineno if isinstance(node, ast.For) else node.iter.lineno
            problems.append((line, "iterates over a set literal (order depends on hashing)"))
    return sorted(set(problems))


def exposed(fn):
    if fn.name in ("__init__", "__concoordinit__"):
        return False
    return not fn.name.startswith("_") or fn.name in CALLABLE_DUNDERS


def proxy_method(fn, asynchronous=False, batched=False):
    """``fn`` with ``_concoord_command`` removed and a body that calls the replicas
    (``asynchronous``: an ``async def`` awaiting the asyncio client; ``batched``:
    queues the call and returns its future, except for the dunders, which must
    return their value)."""
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    kept = [(a, d) for a, d in zip(positional, defaults) if a.arg != "_concoord_command"]
    new_positional = [a for a, _ in kept]
    new_defaults = [d for _, d in kept]
    while new_defaults and new_defaults[0] is None:
        new_defaults.pop(0)
    if any(d is None for d in new_defaults):
        raise Problem("%s: cannot drop _concoord_command from its signature" % fn.name)
    kwonly = [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if a.arg != "_concoord_command"]
    if kwonly or args.kwarg:
        raise Problem(
            "line %d: %s() takes keyword-only arguments or **kwargs, which calls cannot "
            "carry (arguments travel by position)" % (fn.lineno, fn.name)
        )
    forwarded = [ast.Constant(fn.name)] + [ast.Name(a.arg, ast.Load()) for a in new_positional[1:]]
    if args.vararg:
        forwarded.append(ast.Starred(ast.Name(args.vararg.arg, ast.Load()), ast.Load()))
    if asynchronous:
        # await self.client.call(self.instance, name, [args..., *vararg])
        items = [e for e in forwarded[1:] if not isinstance(e, ast.Starred)]
        arglist = ast.List(items, ast.Load())
        if args.vararg:
            arglist = ast.BinOp(arglist, ast.Add(), ast.Call(ast.Name("list", ast.Load()), [ast.Name(args.vararg.arg, ast.Load())], []))
        call = ast.Await(
            ast.Call(
                ast.Attribute(
                    ast.Attribute(ast.Name("self", ast.Load()), "client", ast.Load()),
                    "call",
                    ast.Load(),
                ),
                [ast.Attribute(ast.Name("self", ast.Load()), "instance", ast.Load()), forwarded[0], arglist],
                [],
            )
        )
    else:
        call = ast.Call(
            ast.Attribute(
                ast.Attribute(ast.Name("self", ast.Load()), "proxy", ast.Load()),
                "invoke_command_async" if batched and not fn.name.startswith("__") else "invoke_command",
                ast.Load(),
            ),
            forwarded,
            [],
        )
    body = [ast.Return(call)]
    doc = ast.get_docstring(fn)
    if doc:
        body.insert(0, ast.Expr(ast.Constant(doc)))
    method = (ast.AsyncFunctionDef if asynchronous else ast.FunctionDef)(
        name=fn.name,
        args=ast.arguments(
            posonlyargs=[],
            args=new_positional,
            vararg=args.vararg,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=new_defaults,
        ),
        body=body,
        decorator_list=[],
        returns=None,
        type_comment=None,
        lineno=fn.lineno,
    )
    if "type_params" in type(method)._fields:
        method.type_params = []
    return method


CONSTRUCTOR = '''
def __init__(self, bootstrap, timeout=60, debug=False, token=%r, ssl_context=None):
    """Connects to the replicas (through TLS with ``ssl_context``, see
    ``concoord.tls``); does not touch the replicated object."""
    self.proxy = ClientProxy(bootstrap, timeout, debug, token, ssl_context=ssl_context)

def __concoordinit__(self, *args):
    """Re-initialises the replicated object in place with ``args``."""
    return self.proxy.invoke_command("__concoordinit__", *args)
'''


BATCH_CONSTRUCTOR = '''
def __init__(self, bootstrap, timeout=60, debug=False, token=%r, batch_size=100, ssl_context=None):
    """Connects to the replicas (through TLS with ``ssl_context``, see
    ``concoord.tls``); does not touch the replicated object. Methods queue their
    call and return a future; ``self.proxy.flush()`` sends the queue (so does
    asking a future for its result, or ``batch_size`` queued calls)."""
    self.proxy = ClientProxy(
        bootstrap, timeout, debug, token, batch_size=batch_size, ssl_context=ssl_context
    )

def __concoordinit__(self, *args):
    """Re-initialises the replicated object in place with ``args`` (a future)."""
    return self.proxy.invoke_command_async("__concoordinit__", *args)
'''


ASYNC_CONSTRUCTOR = '''
def __init__(self, client, instance="default"):
    """An asyncio proxy: ``await Class.connect(bootstrap)`` makes one."""
    self.client = client
    self.instance = instance

@classmethod
async def connect(cls, bootstrap, timeout=60, debug=False, token=%r, ssl_context=None):
    """Connects to the replicas (through TLS with ``ssl_context``, see
    ``concoord.tls``); does not touch the replicated object."""
    client = await _ConCoordClient.connect(
        bootstrap, token=token, give_up_after=timeout, ssl_context=ssl_context
    )
    return cls(client)

async def close(self):
    """Ends the session, releasing what it holds."""
    await self.client.close()

async def __concoordinit__(self, *args):
    """Re-initialises the replicated object in place with ``args``."""
    return await self.client.call(self.instance, "__concoordinit__", list(args))
'''


def generate(source, path, class_name, token, proxytype):
    tree = ast.parse(source, filename=path)
    target = None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            target = node
    if target is None:
        raise Problem("%s defines no top-level class %s" % (path, class_name))
    asynchronous = proxytype == 3
    batched = proxytype == 2
    constructor = ASYNC_CONSTRUCTOR if asynchronous else BATCH_CONSTRUCTOR if batched else CONSTRUCTOR
    methods = [n for n in target.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    others = [
        n for n in target.body
        if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
    ]
    docstring = [n for n in target.body[:1] if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)]
    target.body = (
        docstring
        + others
        + ast.parse(constructor % (token,)).body
        + [
            proxy_method(m, asynchronous, batched)
            for m in methods
            # str() and repr() cannot await: call them with proxy.client.call.
            if exposed(m) and not (asynchronous and m.name.startswith("__"))
        ]
    )
    target.decorator_list = []
    runtime = ast.parse(RUNTIMES[proxytype]).body
    start = 1 if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) else 0
    tree.body[start:start] = runtime
    ast.fix_missing_locations(tree)
    header = "# Generated by `concoord object -o %s.%s` from %s: edit the class, not this file.\n" % (
        os.path.splitext(os.path.basename(path))[0], class_name, os.path.basename(path)
    )
    return header + ast.unparse(tree) + "\n"


def proxy_path(path, module_name):
    """``<module>proxy.py`` next to the module, unless the module belongs to an
    installed package, to ``concoord`` itself, or its folder is not writable: then
    in the current directory, where ``from <module>proxy import ...`` finds it."""
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.splitext(os.path.basename(path))[0] + "proxy.py"
    installed = module_name.split(".")[0] == "concoord" or any(
        part in ("site-packages", "dist-packages") for part in folder.split(os.sep)
    )
    inside_cwd = (folder + os.sep).startswith(os.getcwd() + os.sep)
    if not installed and (inside_cwd or os.access(folder, os.W_OK)):
        return os.path.join(folder, name)
    return os.path.join(os.getcwd(), name)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="concoord object")
    parser.add_argument("-o", "--objectname", required=True)
    parser.add_argument("-t", "--token", default=None)
    parser.add_argument("-p", "--proxytype", type=int, default=0)
    parser.add_argument("-s", "--safe", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        module_name, _, class_name = args.objectname.rpartition(".")
        if not module_name:
            raise Problem("give the class as module.Class, not %r" % args.objectname)
        if args.proxytype not in RUNTIMES:
            raise Problem(
                "proxy type %d is not available: 0 and 1 give the same synchronous, "
                "thread-safe proxy, 2 a batching proxy (methods return futures), 3 an "
                "asyncio proxy" % args.proxytype
            )
        path = find_source(module_name)
        if args.verbose:
            print("reading %s" % path)
        with open(path, encoding="utf-8") as f:
            source = f.read()
        if args.safe:
            problems = safety_problems(ast.parse(source, filename=path))
            if problems:
                for line, reason in problems:
                    print("%s:%d: %s" % (path, line, reason), file=sys.stderr)
                raise Problem("%s is not safe to run on replicas (see above)" % args.objectname)
            if args.verbose:
                print("%s passed the safety check" % args.objectname)
        out = generate(source, path, class_name, args.token, args.proxytype)
        target = proxy_path(path, module_name)
        with open(target, "w", encoding="utf-8") as f:
            f.write(out)
        print("Client proxy file created with name: %s" % target)
        return 0
    except (Problem, SyntaxError) as e:
        print("concoord object: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

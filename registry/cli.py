"""`python -m registry.cli`: check, register and diff the event catalog in `schemas/`.

- `check`    every version is compatible with its predecessors under the subject's mode (offline by
             default: BACKWARD_TRANSITIVE / LENIENT, or the registry's config with `--registry`), pins
             its own identity (`meta.event_name` = the folder, `meta.event_version` = N) and is a
             valid JSON Schema whose examples behave as labelled. Exit 1 with reasons otherwise. CI runs it.
- `register` POST every version, oldest first, to a running registry (needs the token); identical
             content is not registered twice.
- `diff`     what changed between two versions of one event, and the verdict in both directions.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from eventbus.schemas.validation import CompiledSchema, event_name_of, event_version_of
from eventbus.stack.target import TargetError, resolve
from registry.compat import IDENTITY_PATHS, Mode, Policy, verdict
from registry.compat.engine import check as compat_check
from registry.seed import catalog
from registry.settings import RegistrySettings

DEFAULT_SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
DEFAULT_MODE = Mode.BACKWARD_TRANSITIVE
DEFAULT_POLICY = Policy.LENIENT


class CliError(Exception):
    """A problem the operator can fix; the message says how."""


# -- catalog ------------------------------------------------------------------------------------------------
def load_catalog(schemas_dir: Path) -> dict[str, list[tuple[int, Any]]]:
    if not schemas_dir.is_dir():
        raise CliError(f"no schema catalog at {schemas_dir}: pass --schemas DIR (a folder of <Event>/v<N>.json)")
    events: dict[str, list[tuple[int, Any]]] = {}
    for name, version, schema in catalog(schemas_dir):
        events.setdefault(name, []).append((version, schema))
    if not events:
        raise CliError(f"{schemas_dir} holds no <Event>/v<N>.json files")
    return events


def _examples(schemas_dir: Path, name: str, version: int) -> dict[str, Any] | None:
    path = schemas_dir / name / f"v{version}.examples.json"
    return json.loads(path.read_text()) if path.exists() else None


def _registry_config(client: httpx.Client, subject: str) -> tuple[Mode, Policy]:
    response = client.get(f"/config/{subject}", params={"defaultToGlobal": "true"})
    if response.status_code != 200:
        raise CliError(f"GET /config/{subject} answered {response.status_code}: {response.text}")
    body = response.json()
    return Mode(body["compatibilityLevel"]), Policy(body.get("policy", DEFAULT_POLICY.value))


# -- check --------------------------------------------------------------------------------------------------
def check_catalog(schemas_dir: Path, mode: Mode | None, policy: Policy | None,
                  registry: httpx.Client | None) -> list[str]:
    """Every problem found, as one line each; [] when the catalog is sound."""
    problems: list[str] = []
    for name, versions in load_catalog(schemas_dir).items():
        before = len(problems)
        subject_mode, subject_policy = (_registry_config(registry, name) if registry is not None
                                        else (DEFAULT_MODE, DEFAULT_POLICY))
        mode_used, policy_used = mode or subject_mode, policy or subject_policy
        expected = list(range(len(versions)))
        if [v for v, _ in versions] != expected:
            problems.append(f"{name}: versions {[v for v, _ in versions]} are not consecutive from v0")
        history: list[tuple[int, Any]] = []
        for version, schema in versions:
            where = f"{name} v{version}"
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                at = "/" + "/".join(map(str, exc.path))
                problems.append(f"{where}: not a valid JSON Schema 2020-12: {exc.message} at {at}")
                continue
            if event_name_of(schema) != name:
                problems.append(f"{where}: meta.event_name must be pinned to {name!r} "
                                f"(found {event_name_of(schema)!r})")
            if event_version_of(schema) != version:
                problems.append(f"{where}: meta.event_version must be pinned to {version} "
                                f"(found {event_version_of(schema)!r})")
            problems += _check_examples(schemas_dir, name, version, schema)
            result = verdict(schema, history, mode_used, policy_used)
            problems += [f"{where} under {mode_used.value}/{policy_used.value}: {f.message()}" for f in result.findings]
            history.append((version, schema))
        print(f"  {name:<16} v0..v{versions[-1][0]}  {mode_used.value}/{policy_used.value}  "
              f"{'ok' if len(problems) == before else 'FAILED'}")
    return problems


def _check_examples(schemas_dir: Path, name: str, version: int, schema: Any) -> list[str]:
    examples = _examples(schemas_dir, name, version)
    where = f"{name} v{version}"
    if examples is None:
        return [f"{where}: no examples file v{version}.examples.json beside the schema"]
    compiled = CompiledSchema(name, version, schema)
    problems = []
    for i, case in enumerate(examples.get("valid", [])):
        issues = compiled.issues(case["instance"])
        if issues:
            problems.append(f"{where}: valid example #{i} is rejected: {issues[0].pointer}: {issues[0].message}")
    for i, case in enumerate(examples.get("invalid", [])):
        if not compiled.issues(case["instance"]):
            problems.append(f"{where}: invalid example #{i} ({case.get('why', '')}) is accepted")
    return problems


# -- diff ---------------------------------------------------------------------------------------------------
def _walk_diff(old: Any, new: Any, path: str) -> Iterator[tuple[str, str, str]]:
    """('+'|'-'|'~', pointer, text) for every difference between two JSON documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            child = f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"
            if key not in new:
                yield "-", child, _short(old[key])
            elif key not in old:
                yield "+", child, _short(new[key])
            else:
                yield from _walk_diff(old[key], new[key], child)
    elif old != new:
        if isinstance(old, list) and isinstance(new, list) and all(not isinstance(x, dict | list) for x in old + new):
            removed = [x for x in old if x not in new]
            added = [x for x in new if x not in old]
            parts = ([f"removed {_short(removed)}"] if removed else []) + ([f"added {_short(added)}"] if added else [])
            yield "~", path, ", ".join(parts) or f"reordered {_short(old)} -> {_short(new)}"
        else:
            yield "~", path, f"{_short(old)} -> {_short(new)}"


def _short(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_changes(old: Any, new: Any) -> list[str]:
    lines = []
    for sign, pointer, text in _walk_diff(old, new, ""):
        identity = next((p for p in IDENTITY_PATHS if pointer.startswith(p)), None)
        note = "   (event identity: not a content change)" if identity else ""
        lines.append(f"  {sign} {pointer or '/'}: {text}{note}")
    return lines


def diff(schemas_dir: Path, name: str, a: int, b: int, policy: Policy) -> tuple[list[str], bool]:
    versions = dict(load_catalog(schemas_dir).get(name, []))
    if not versions:
        known = ", ".join(sorted(load_catalog(schemas_dir)))
        raise CliError(f"no event {name!r} in {schemas_dir} (known: {known})")
    for v in (a, b):
        if v not in versions:
            raise CliError(f"{name} has no v{v} (versions: {sorted(versions)})")
    old, new = versions[a], versions[b]
    lines = [f"{name} v{a} -> v{b}", "changes:"]
    lines += describe_changes(old, new) or ["  (none)"]
    backward = compat_check(old, new, policy=policy)
    forward = compat_check(new, old, policy=policy)
    lines.append(f"verdict ({policy.value}):")
    for label, meaning, reasons in (
        ("BACKWARD", f"v{b} readers accept v{a} events", backward),
        ("FORWARD", f"v{a} readers accept v{b} events", forward),
    ):
        lines.append(f"  {label:<9}{'compatible' if not reasons else 'INCOMPATIBLE'}  ({meaning})")
        lines += [f"      {r.location or '/'}: {r.message} [{r.rule}]" for r in reasons]
    full = not backward and not forward
    lines.append(f"  FULL     {'compatible' if full else 'INCOMPATIBLE'}")
    return lines, not backward


# -- register -----------------------------------------------------------------------------------------------
def register(schemas_dir: Path, client: httpx.Client, only: Sequence[str]) -> int:
    failures = 0
    for name, versions in load_catalog(schemas_dir).items():
        if only and name not in only:
            continue
        for version, schema in versions:
            response = client.post(f"/subjects/{name}/versions",
                                   json={"schemaType": "JSON", "schema": json.dumps(schema)})
            body = _json(response)
            if response.status_code == 200:
                print(f"  {name} v{version}: id {body.get('id')}")
                continue
            failures += 1
            print(f"  {name} v{version}: REFUSED {response.status_code} {body.get('error_code', '')}: "
                  f"{body.get('message', response.text)}")
            for message in body.get("messages", []) or []:
                print(f"      {message}")
            if response.status_code in (401, 403):
                raise CliError(f"{body.get('message', 'unauthorised')} — set REGISTRY_TOKEN or pass --token")
    return failures


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _client(url: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=10.0)


# -- entry point --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m registry.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = RegistrySettings()
    parser.add_argument("--schemas", type=Path, default=settings.schemas_dir,
                        help="the catalog folder (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_check = sub.add_parser("check", help="every version compatible with its predecessors (exit 1 if not)")
    p_check.add_argument("--mode", type=Mode, choices=list(Mode), help="override the subject's mode")
    p_check.add_argument("--policy", type=Policy, choices=list(Policy), help="override the subject's policy")
    p_check.add_argument("--registry", metavar="URL",
                         help="read each subject's mode/policy from this registry (default: offline, "
                              f"{DEFAULT_MODE.value}/{DEFAULT_POLICY.value})")

    p_reg = sub.add_parser("register", help="register every version into a running registry")
    p_reg.add_argument("--registry", metavar="URL",
                       help="registry base URL (default: REGISTRY_URL, else the running stack's registry)")
    p_reg.add_argument("--token", default=settings.registry_token if "registry_token" in settings.model_fields_set
                       else None,
                       help="bearer token for writes (env REGISTRY_TOKEN)")
    p_reg.add_argument("events", nargs="*", help="only these events (default: all)")

    p_diff = sub.add_parser("diff", help="what changed between two versions of an event, and the verdict")
    p_diff.add_argument("name", help="event name, e.g. TaskCreated")
    p_diff.add_argument("a", type=_version, help="old version, e.g. 0 or v0")
    p_diff.add_argument("b", type=_version, help="new version, e.g. 1 or v1")
    p_diff.add_argument("--policy", type=Policy, choices=list(Policy), default=DEFAULT_POLICY)
    return parser


def _version(text: str) -> int:
    try:
        return int(text.lower().removeprefix("v"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version (write 1 or v1)") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            print(f"checking {args.schemas}")
            client = _client(args.registry, None) if args.registry else None
            problems = check_catalog(args.schemas, args.mode, args.policy, client)
            for line in problems:
                print(f"FAIL {line}")
            print(f"{'OK' if not problems else f'{len(problems)} problem(s)'}")
            return 0 if not problems else 1
        if args.command == "register":
            target = resolve(registry=args.registry, flags={"registry": "--registry"})
            args.registry = target.need("registry")
            print(target.describe("registry"))
            print(f"registering {args.schemas} into {args.registry}")
            failures = register(args.schemas, _client(args.registry, args.token), args.events)
            print("OK" if not failures else f"{failures} version(s) refused")
            return 0 if not failures else 1
        lines, _ = diff(args.schemas, args.name, args.a, args.b, args.policy)
        print("\n".join(lines))
        return 0
    except (CliError, TargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the registry ({exc!r}); is it running? (`make run`, or pass --registry URL)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

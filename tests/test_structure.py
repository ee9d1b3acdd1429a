"""The shape of the code, read with `ast` (no import, no database): one plugin per feature,
the runtime a plain ordered list of plugins, each feature's routes in its own package, and
`bridge/web/` knowing no feature."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

BRIDGE = Path(__file__).resolve().parent.parent / "bridge"
FEATURES = (
    "agi",
    "alerts",
    "ami",
    "ari",
    "connectors",
    "crm",
    "db",
    "dial",
    "pops",
    "records",
    "routing",
    "sync",
    "wallboard",
    "web",
)
# What a feature may use of bridge/web/: the shared HTTP helpers, never another feature.
# What features may use of web/: errors, auth, parameters, the admin API frame, and the health
# and metrics hooks (the cluster adds its instance to /healthz and labels /metrics).
SHARED_WEB = {
    "bridge.web.errors",
    "bridge.web.auth",
    "bridge.web.params",
    "bridge.web.admin_api",
    "bridge.web.health",
}
ROUTE_CALLS = {
    "add_get",
    "add_post",
    "add_put",
    "add_patch",
    "add_delete",
    "add_head",
    "add_route",
    "add_static",
}


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(BRIDGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def imported(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def package_of(path: Path) -> str:
    parts = path.relative_to(BRIDGE).parts
    return parts[0] if len(parts) > 1 else ""


def test_every_feature_package_has_a_plugin_module() -> None:
    missing = [name for name in FEATURES if not (BRIDGE / name / "plugin.py").is_file()]
    assert missing == []


def test_the_runtime_is_a_plain_ordered_list_of_the_features_plugins() -> None:
    tree = ast.parse((BRIDGE / "runtime.py").read_text(encoding="utf-8"))
    lists = [
        node.value
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "PLUGINS"
    ]
    assert len(lists) == 1 and isinstance(lists[0], ast.Tuple)
    names = lists[0].elts
    assert names and all(isinstance(name, ast.Name) for name in names)  # no call, no lambda
    plugin_names = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    for name in names:
        assert isinstance(name, ast.Name)
        module = plugin_names.get(name.id, "")
        assert module.startswith("bridge.") and module.endswith(".plugin"), name.id
    # Nothing else is built here: no function takes the context to make a part.
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert functions == {"start_plugins", "_stopper", "open_files_needed", "run_bridge"}


def test_route_tables_register_only_their_own_modules_handlers() -> None:
    """A module mounting routes mounts handlers it defines: no feature's routes are listed
    by another (as the old web/admin.py did for rules, agents, customers, calls...)."""
    strays = []
    for path, tree in modules():
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ROUTE_CALLS
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Name)
                and node.args[1].id not in defined
            ):
                strays.append(f"{path.relative_to(BRIDGE)}: {node.args[1].id}")
    # /healthz and /metrics are the web factory's own, from its sibling module.
    assert strays == ["web/factory.py: handle_healthz", "web/factory.py: handle_metrics"]


def test_features_use_only_the_shared_parts_of_web() -> None:
    wrong = []
    for path, tree in modules():
        package = package_of(path)
        if package == "web" or path.name == "runtime.py":
            continue
        for module in imported(tree):
            if module.startswith("bridge.web") and module not in SHARED_WEB:
                wrong.append(f"{path.relative_to(BRIDGE)}: {module}")
    assert wrong == []


def test_web_knows_no_feature() -> None:
    # itself, the top-level modules, connection limits, the database error mapping
    allowed = {"web", "", "netguard", "db"}
    wrong = []
    for path, tree in modules():
        if package_of(path) != "web":
            continue
        for module in imported(tree):
            parts = module.split(".")
            if parts[0] == "bridge" and len(parts) > 1:
                target = parts[1] if (BRIDGE / parts[1]).is_dir() else ""
                if target not in allowed:
                    wrong.append(f"{path.relative_to(BRIDGE)}: {module}")
    assert wrong == []


def test_alerts_import_no_records_and_plugins_pass_parts_through_typed_keys() -> None:
    """alerts <-> records was a cycle; `rt.built` and `getattr(x, "pool")` were side doors
    of the composition."""
    wrong = []
    for path, tree in modules():
        rel = str(path.relative_to(BRIDGE))
        if package_of(path) == "alerts":
            wrong += [f"{rel}: {m}" for m in imported(tree) if m.startswith("bridge.records")]
        if path.name not in ("plugin.py", "runtime.py"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "built":
                wrong.append(f"{rel}: .built")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "pool"
            ):
                wrong.append(f'{rel}: getattr(..., "pool")')
    assert wrong == []

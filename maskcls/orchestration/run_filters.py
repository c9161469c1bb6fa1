"""Finding runs in a season of them: the filters of `maskcls runs list` and the Runs page over the run index's
rows (name text, states, group kinds, members, config KEY=VALUE, an F1 range) and their sort."""
from __future__ import annotations

SORTS = {"f1": "best macro F1", "name": "name", "started": "started", "disk": "disk MB", "state": "state"}


def parse_where(items: list[str]) -> dict:
    """KEY=VALUE filters on config keys: each key checked against the run config's fields and each value parsed as
    the config parses it (`image_size=[32,32]` is a list, `lr=3e-4` a number), so a filter that could match
    nothing because of its spelling is refused with the reason instead of matching nothing silently."""
    from maskcls.train.config import RunConfig
    fields = set(RunConfig.__dataclass_fields__)
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"a filter is KEY=VALUE (e.g. model=efficientnet_b0), got {item!r}")
        if key not in fields:
            raise ValueError(f"no config key {key!r} to filter by; the keys are: {', '.join(sorted(fields))}")
        if key in UNFILTERABLE:
            raise ValueError(f"{key} holds a JSON object (a whole spec): it cannot be a filter; filter by another key")
        try:
            out[key] = getattr(RunConfig().with_overrides([f"{key}={value.strip()}"]), key)
        except ValueError as e:
            raise ValueError(f"filter {item!r}: {e}") from None
    return out


def split_filters(text: str) -> list[str]:
    """'model=resnet18, image_size=[64,48]' -> each KEY=VALUE: a comma splits only where the next KEY= begins, so
    list values keep their commas (the Runs page's one text box)."""
    import re
    return [part.strip() for part in re.split(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)", text or "") if part.strip()]


UNFILTERABLE = ("combo",)  # object-valued keys (augment may be a preset name, so it stays)


def _matches(value, wanted) -> bool:
    """A run's config value against a filter value parsed by the config (numbers compare as numbers)."""
    if isinstance(wanted, bool) or isinstance(value, bool):
        return value is wanted or (isinstance(wanted, str) and str(value).lower() == wanted.lower())
    if isinstance(wanted, (int, float)) and isinstance(value, (int, float)):
        return float(wanted) == float(value)
    if isinstance(wanted, list):
        return isinstance(value, list) and value == wanted
    return value == wanted or (value is None and wanted in ("", "null"))


def filter_rows(rows: list[dict], *, text: str = "", states=(), kinds=(), members=(), where: dict | None = None,
                f1: tuple[float, float] | None = None) -> list[dict]:
    """The rows a user's filters keep: name text (any part, any case), states, group kinds, team members, config
    key = value, and a best macro F1 range (a run with no F1 yet is outside every range)."""
    text = text.strip().lower()
    out = []
    for r in rows:
        if text and text not in str(r["name"]).lower() or states and r["state"] not in states:
            continue
        if kinds and r.get("kind") not in kinds or members and r.get("member") not in members:
            continue
        if where and not all(_matches(r.get("config", {}).get(k), v) for k, v in where.items()):
            continue
        if f1 is not None and (r.get("best macro F1") is None or not f1[0] <= r["best macro F1"] <= f1[1]):
            continue
        out.append(r)
    return out


def sort_rows(rows: list[dict], by: str = "name") -> list[dict]:
    """Rows sorted by `by` (f1 and disk largest first, started newest first); runs with no value last."""
    if by not in SORTS:
        raise ValueError(f"--sort is one of {', '.join(SORTS)}, got {by!r}")
    col = SORTS[by]
    have = [r for r in rows if r.get(col) is not None]
    rest = [r for r in rows if r.get(col) is None]
    return sorted(have, key=lambda r: r[col], reverse=by in ("f1", "disk", "started")) + rest

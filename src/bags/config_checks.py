"""What JSON Schema cannot check in a config: each file plain YAML without repeated keys or
YTE templating, and every number finite."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml


class _RepeatedKey(ValueError):
    pass


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _RepeatedKey(f"line {line}: key {key!r} repeats the one on line {seen[key]}")
        seen[key] = line
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=True))


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def check_config_file(path: Path | str) -> None:
    """One clear error for a config file that is not plain YAML: unreadable, a key repeated
    in a mapping, or YTE templating asked for (``__use_yte__``: Snakemake then runs the
    file's expressions as Python when it loads it)."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=_StrictLoader)
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cannot read the config file ({error})") from error
    except _RepeatedKey as error:
        raise ValueError(f"{path}: {error}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from error
    if isinstance(data, dict) and "__use_yte__" in data:
        raise ValueError(
            f"{path}: asks for YTE templating (__use_yte__), whose expressions Snakemake runs as "
            "Python while loading the file; this pipeline takes plain YAML only. Read a config "
            "from elsewhere before running it"
        )


def non_finite(value: Any, where: str = "config") -> list[str]:
    """The places in ``value`` (nested dicts and lists) that hold NaN or an infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return [where]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in non_finite(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_finite(v, f"{where}[{i}]")]
    return []

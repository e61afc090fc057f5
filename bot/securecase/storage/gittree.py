"""Tree objects for a commit, computed from the parent's trees instead of through an index.

A change touches one case folder, so only the trees on the paths to its files differ from
the parent's: reading those few trees and writing their new versions with one
``git hash-object -t tree`` replaces ``read-tree``, ``update-index`` and ``write-tree`` (three
processes, one of which reads and writes the whole index).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

TREE_MODE = b"40000"
FILE_MODE = b"100644"


class TreeUnavailable(Exception):
    """A tree this change needs could not be read; build through an index instead."""


def parse_tree(data: bytes, raw_len: int) -> dict[bytes, tuple[bytes, bytes]]:
    """Entries of a tree object: name → (mode, raw object id)."""
    entries: dict[bytes, tuple[bytes, bytes]] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode, name = data[pos:space], data[space + 1 : nul]
        entries[name] = (mode, data[nul + 1 : nul + 1 + raw_len])
        pos = nul + 1 + raw_len
    return entries


def tree_bytes(entries: Mapping[bytes, tuple[bytes, bytes]]) -> bytes:
    """A tree object's content, its entries in git's order (a folder sorts as ``name/``)."""

    def order(name: bytes) -> bytes:
        return name + b"/" if entries[name][0] == TREE_MODE else name

    return b"".join(
        entries[name][0] + b" " + name + b"\0" + entries[name][1]
        for name in sorted(entries, key=order)
    )


def object_id(kind: bytes, content: bytes, hex_len: int) -> str:
    """The id git gives ``content`` as an object of ``kind`` (SHA-1 or SHA-256 repositories)."""
    digest = hashlib.sha256 if hex_len == 64 else hashlib.sha1
    header = kind + b" %d\0" % len(content)
    return digest(header + content, usedforsecurity=False).hexdigest()


def new_trees(
    root: str, changes: Mapping[str, str | None], read_tree: Callable[[str], bytes | None]
) -> tuple[str | None, list[tuple[str, bytes]]]:
    """The new root tree id (None: empty) and the (id, content) of every tree to write.

    ``changes`` maps file paths to their new blob id, or None to remove the file; ``root``
    is the parent's root tree and ``read_tree`` reads a tree object's content by id.
    """
    hex_len = len(root)
    raw_len = hex_len // 2
    nested: dict[str, Any] = {}
    for path, blob in changes.items():
        node = nested
        *folders, name = path.split("/")
        for folder in folders:
            child = node.setdefault(folder, {})
            if not isinstance(child, dict):
                raise ValueError(f"{path!r} is inside a file the same change writes")
            node = child
        if isinstance(node.get(name), dict):
            raise ValueError(f"{path!r} is a folder the same change writes into")
        node[name] = blob
    written: list[tuple[str, bytes]] = []

    def build(node: Mapping[str, Any], tree: str | None) -> str | None:
        entries: dict[bytes, tuple[bytes, bytes]] = {}
        if tree is not None:
            data = read_tree(tree)
            if data is None:
                raise TreeUnavailable(tree)
            entries = parse_tree(data, raw_len)
        for name, change in node.items():
            key = name.encode("utf-8", "surrogateescape")
            if isinstance(change, dict):
                held = entries.get(key)
                inner = held[1].hex() if held is not None and held[0] == TREE_MODE else None
                child = build(change, inner)
                if child is None:
                    entries.pop(key, None)
                else:
                    entries[key] = (TREE_MODE, bytes.fromhex(child))
            elif change is None:
                entries.pop(key, None)
            else:
                entries[key] = (FILE_MODE, bytes.fromhex(change))
        if not entries:
            return None
        content = tree_bytes(entries)
        oid = object_id(b"tree", content, hex_len)
        written.append((oid, content))
        return oid

    return build(nested, root), written

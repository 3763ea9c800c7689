"""Online table names: one per (project, table), valid for Cassandra and SQLite, stable; quoting."""

from __future__ import annotations

import itertools
import re
import sqlite3

from feast_spark.online.naming import MAX_TABLE_NAME_LENGTH, online_table_name, quote_identifier

#: Cassandra accepts table names of word characters only, at most 48 of them.
CASSANDRA_NAME = re.compile(r"\w{1,48}")


def test_projects_and_tables_that_spell_the_same_string_get_different_names() -> None:
    # given the colliding pairs of the old <project>__<table> scheme
    pairs = [("p__x", "t"), ("p", "x__t"), ("p_", "_t"), ("p", "__t"), ("p_", "x__t")]
    # when they are named, then every name differs
    names = [online_table_name(project, table) for project, table in pairs]
    assert len(set(names)) == len(names), dict(zip(pairs, names, strict=True))


def test_names_are_unique_valid_and_short_for_many_tricky_pairs() -> None:
    # given every project and table built from the pieces that create ambiguity, short and long
    pieces = ["p", "_", "x", "__", "t_", "_1", "a" * 30]
    words = {"".join(w) for n in (1, 2, 3) for w in itertools.product(pieces, repeat=n)}
    valid = sorted(w for w in words if re.fullmatch(r"[a-z_][a-z0-9_]*", w) and len(w) <= 48)
    pairs = list(itertools.product(valid, valid))

    # when each pair is named
    names = {pair: online_table_name(*pair) for pair in pairs}

    # then no two pairs share a name, and every name is a valid Cassandra table name
    assert len(set(names.values())) == len(pairs)
    for name in names.values():
        assert CASSANDRA_NAME.fullmatch(name), name
        assert len(name) <= MAX_TABLE_NAME_LENGTH


def test_names_of_existing_tables_do_not_change() -> None:
    # given projects without '__' and not ending in '_' (every unambiguous name of the old
    # scheme), then their tables keep <project>__<table>, or its hashed short form
    assert online_table_name("driver_ranking", "driver_stats") == "driver_ranking__driver_stats"
    assert online_table_name("p", "x__t") == "p__x__t"
    assert online_table_name("_p", "_t") == "_p___t"
    long = online_table_name("project_" + "a" * 30, "table_" + "b" * 30)
    assert long == "project_aaaaaaaaaaaaaaaaaaaaaaaaaaa_f33950d91164"


def test_quoted_identifiers_keep_any_name_literal_in_sqlite() -> None:
    # given names a statement would otherwise misread: a keyword, a quote, a space
    names = ["select", 'a"b', "two words"]
    # when a table is created and read with them quoted
    with sqlite3.connect(":memory:") as connection:
        table = quote_identifier('t"1')
        columns = ", ".join(f"{quote_identifier(n)} INTEGER" for n in names)
        connection.execute(f"CREATE TABLE {table} ({columns})")
        described = connection.execute("SELECT name FROM pragma_table_info(?)", ['t"1']).fetchall()
    # then each is one column of exactly that name; CQL quotes the same way
    assert [row[0] for row in described] == names
    assert quote_identifier('a"b') == '"a""b"'

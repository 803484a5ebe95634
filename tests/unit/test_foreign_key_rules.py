"""Foreign-key actions: which ones `cdcsync init` emulates with a cascade trigger, which it refuses,
and the trigger's SQL (cdcsync/tools/foreign_keys.py, cdcsync/tools/cascade_triggers.py)."""

from __future__ import annotations

from cdcsync.tools.cascade_triggers import cascade_triggers
from cdcsync.tools.foreign_keys import ForeignKey, cascade_problems, emulated


def fk(child: str, parent: str, on_delete: str = "CASCADE", on_update: str = "RESTRICT",
       columns: tuple[str, ...] = ("pid",), refs: tuple[str, ...] = ("id",)) -> ForeignKey:
    return ForeignKey(f"{child}_fk", "d", child, columns, "d", parent, refs, on_delete, on_update)


def everything(db: str, table: str) -> bool:
    return True


def test_delete_actions_into_replicated_children_are_emulated() -> None:
    keys = [fk("items", "orders"), fk("notes", "orders", "SET NULL"), fk("audit", "orders", "RESTRICT"),
            fk("log", "orders", "NO ACTION")]
    assert [k.child_table for k in emulated(keys, everything)] == ["items", "notes"]


def test_a_chain_through_an_unreplicated_table_is_emulated_and_an_unreplicated_leaf_is_not() -> None:
    keys = [fk("orders", "customers"), fk("items", "orders"), fk("scratch", "customers")]
    replicated = {("d", "customers"), ("d", "items"), ("d", "scratch_other")}
    chosen = emulated(keys, lambda db, t: (db, t) in replicated)
    assert [k.child_table for k in chosen] == ["orders", "items"]


def test_update_actions_and_delete_cycles_are_refused_with_the_fix() -> None:
    problem, = cascade_problems([fk("items", "orders", "RESTRICT", "CASCADE")], everything)
    assert "d.items constraint items_fk (pid) -> d.orders has ON UPDATE CASCADE" in problem
    assert "ON UPDATE RESTRICT" in problem
    assert cascade_problems([fk("items", "orders", "RESTRICT", "CASCADE")], lambda db, t: t == "orders") == []
    problem, = cascade_problems([fk("tree", "tree")], everything)
    assert "cycle d.tree -> d.tree" in problem and "ON DELETE RESTRICT" in problem
    problem, = cascade_problems([fk("a", "b"), fk("b", "a", "SET NULL")], everything)
    assert "cycle d.a -> d.b -> d.a" in problem
    assert cascade_problems([fk("a", "b", "RESTRICT"), fk("b", "a")], everything) == []   # RESTRICT breaks it


def test_one_before_delete_trigger_per_parent_in_a_fixed_order() -> None:
    keys = [fk("notes", "orders", "SET NULL", columns=("o1", "o2"), refs=("a", "b")), fk("items", "orders")]
    trigger, = cascade_triggers(keys)
    assert (trigger.name, trigger.timing, trigger.event, trigger.table) == ("cdcsync_orders_bd", "BEFORE", "DELETE",
                                                                            "orders")
    assert trigger.body == ("BEGIN\n  IF COALESCE(@cdcsync_applying, 0) = 0 THEN\n"
                            "    DELETE FROM `d`.`items` WHERE `pid` = OLD.`id`;\n"
                            "    UPDATE `d`.`notes` SET `o1` = NULL, `o2` = NULL WHERE `o1` = OLD.`a` AND `o2` = OLD.`b`;\n"
                            "  END IF;\nEND")
    assert trigger.create("mariadb") == [f"CREATE OR REPLACE TRIGGER `d`.`cdcsync_orders_bd` BEFORE DELETE ON "
                                         f"`d`.`orders` FOR EACH ROW {trigger.body}"]
    assert cascade_triggers(list(reversed(keys))) == [trigger]

-- Release v2: v2 builds the confirmation summary from order_items and never
-- reads or writes orders.note. v1 writes it on every checkout, so the column
-- may only go once v1 is stopped: cutover runs this file when v2's rollback
-- window has closed (or on `cutover contract shop`), and from then on refuses
-- to roll back to v1 without --force.
ALTER TABLE orders DROP COLUMN note;

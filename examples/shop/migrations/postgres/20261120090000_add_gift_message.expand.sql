-- Release v2: an order may carry a gift message. Nullable, so v1, still live
-- while this runs and kept for a rollback afterwards, goes on inserting
-- orders without knowing the column.
ALTER TABLE orders ADD COLUMN gift_message text;

-- Release v1: the orders and their lines. Carts and sessions live in Redis
-- when the shop runs against PostgreSQL, so they have no tables here.
-- orders.note is the plain-text summary v1 writes for the confirmation e-mail.
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now(),
  total_cents bigint NOT NULL CHECK (total_cents >= 0),
  note text
);

CREATE TABLE order_items (
  order_id bigint NOT NULL REFERENCES orders (id),
  item text NOT NULL,
  quantity integer NOT NULL CHECK (quantity > 0),
  price_cents bigint NOT NULL CHECK (price_cents >= 0),
  PRIMARY KEY (order_id, item)
);

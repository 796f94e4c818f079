-- Release v1: the orders and their lines, and the sessions and carts the shop
-- keeps here when it runs without Redis. Every instance of either color opens
-- this one file, so a shopper's cart does not depend on which one answers.
-- orders.note is the plain-text summary v1 writes for the confirmation e-mail.
CREATE TABLE orders (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_unix_ms INTEGER NOT NULL,
  total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
  note TEXT
);

CREATE TABLE order_items (
  order_id INTEGER NOT NULL REFERENCES orders (id),
  item TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
  PRIMARY KEY (order_id, item)
);

CREATE TABLE sessions (
  sid TEXT PRIMARY KEY,
  created_unix_ms INTEGER NOT NULL
);

CREATE TABLE carts (
  sid TEXT NOT NULL REFERENCES sessions (sid),
  item TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (sid, item)
);

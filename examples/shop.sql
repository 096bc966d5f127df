-- Sample source for the quick start: a small shop.
CREATE SCHEMA IF NOT EXISTS shop;
CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');

CREATE TABLE shop.customers (
    id         bigint PRIMARY KEY,
    email      text NOT NULL,
    name       text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE shop.products (
    id    int PRIMARY KEY,
    title text NOT NULL,
    price numeric(10,2) NOT NULL,
    tags  text[]
);
CREATE TABLE shop.orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES shop.customers(id),
    status      shop.order_status NOT NULL DEFAULT 'new',
    total       numeric(12,2) NOT NULL DEFAULT 0,
    details     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
-- Matches the `exclude` filter of examples/zetl.yaml: never replicated.
CREATE TABLE shop.audit_log (id bigserial PRIMARY KEY, note text);

INSERT INTO shop.customers (id, email, name)
SELECT g, 'customer' || g || '@example.com', 'Customer ' || g FROM generate_series(1, 10000) g;
INSERT INTO shop.products
SELECT g, 'Product ' || g, round((random() * 100)::numeric, 2), ARRAY['tag' || (g % 7), 'tag' || (g % 3)]
FROM generate_series(1, 1000) g;
INSERT INTO shop.orders (customer_id, status, total, details)
SELECT 1 + (g % 10000), (ARRAY['new','paid','shipped']::shop.order_status[])[1 + g % 3],
       round((random() * 500)::numeric, 2), jsonb_build_object('items', 1 + g % 5)
FROM generate_series(1, 100000) g;

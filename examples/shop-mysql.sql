-- A small shop for MySQL/MariaDB, the MySQL counterpart of shop.sql (docker-compose.yml loads it).
CREATE DATABASE IF NOT EXISTS shop;
USE shop;

CREATE TABLE customers (
  id int PRIMARY KEY AUTO_INCREMENT,
  email varchar(200) NOT NULL UNIQUE,
  name varchar(200) NOT NULL,
  created_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
);

CREATE TABLE orders (
  id bigint PRIMARY KEY AUTO_INCREMENT,
  customer_id int NOT NULL,
  status enum('new', 'paid', 'shipped', 'cancelled') NOT NULL DEFAULT 'new',
  total decimal(12, 2) NOT NULL,
  items json,
  placed_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY (customer_id)
);

INSERT INTO customers (email, name)
SELECT CONCAT('customer', seq, '@example.com'), CONCAT('Customer ', seq) FROM seq_1_to_1000;

INSERT INTO orders (customer_id, status, total, items)
SELECT 1 + seq % 1000, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'cancelled'), (seq % 500) + 0.99,
       JSON_ARRAY(JSON_OBJECT('sku', CONCAT('sku-', seq % 50), 'qty', 1 + seq % 3))
FROM seq_1_to_10000;

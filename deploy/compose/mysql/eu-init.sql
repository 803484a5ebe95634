-- Runs once, when mysql-eu's data volume is first created (docker-entrypoint-initdb.d).
-- The application schema, cdcsync's metadata database, and the cdcsync user: the binlog reader
-- (REPLICATION SLAVE, REPLICATION CLIENT, SELECT) and the applier (DML on the replicated schema and on
-- the metadata database, TRIGGER for `cdcsync init`'s clock triggers) in one local-development user.
-- Split the reader and the applier into two users in production (docs/deployment/security.md).
CREATE DATABASE IF NOT EXISTS shop;
CREATE DATABASE IF NOT EXISTS cdcsync;

CREATE TABLE IF NOT EXISTS shop.items (
    id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    price DECIMAL(12, 2) NOT NULL,
    updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;

CREATE USER IF NOT EXISTS 'cdcsync'@'%' IDENTIFIED BY 'cdcsync-dev-eu';
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdcsync'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, TRIGGER ON shop.* TO 'cdcsync'@'%';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX ON cdcsync.* TO 'cdcsync'@'%';

-- Whether the request carried secret_values, apart from their digest, which is now keyed with the
-- server key (and absent without one). The unkeyed sha256 digests stored so far let anyone who
-- reads a deploy confirm a guessed secret offline: they are dropped.
alter table deploys add column has_secret_values boolean not null default false;
update deploys
set has_secret_values = secret_values_digest is not null,
    secret_values_digest = null
where secret_values_digest is not null;

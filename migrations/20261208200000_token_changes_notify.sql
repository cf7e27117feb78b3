-- Every replica caches the tokens it has checked; a change that can end a token (revocation,
-- expiry, scopes, targets, its secret, its removal) is announced on `rollcall_token_changes` with
-- the token's id, delivered when the change commits, so that each replica drops its copy. A
-- trigger rather than the revoking statement: a token revoked with plain SQL by an operator stops
-- working everywhere too. `last_used_at` is not among the columns: recording a use changes
-- nothing a cache holds.
create function rollcall_token_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('rollcall_token_changes', old.id::text);
    return null;
end
$$;

create trigger api_tokens_changed
    after update of revoked_at, expires_at, scopes, targets, secret_sha256, name or delete
    on api_tokens
    for each row execute function rollcall_token_changed();

-- A token may expire (refused afterwards, like a revoked one); when it was last used helps an
-- admin tell which tokens to revoke (recorded at most once a minute per token).
alter table api_tokens add column expires_at timestamptz;
alter table api_tokens add column last_used_at timestamptz;

-- The secret values of a deploy that has not ended, sealed with the server key (XChaCha20-Poly1305,
-- bound to the deploy's id), so that the runner of any replica, or a restarted one, can use them.
-- The row is deleted in the transaction that ends the deploy.
create table deploy_secret_values (
    deploy_id uuid primary key references deploys (id) on delete cascade,
    sealed text not null
);

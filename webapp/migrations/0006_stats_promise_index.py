"""indexes for the stats: promises judged from an index alone, archived clients found at once

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:00:00

"""
from typing import Sequence, Union

from alembic import op


revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """GET /stats reads a month of promises per request (due date, kept date, client).

    The (user_id, status, due_at) index found them but each row was then read from the table;
    with done_at and client_id in the index the read never leaves it. It replaces the old index
    (every query that used it still can), so the writes keep the same number of indexes.
    """
    op.create_index(
        'ix_callbacks_user_status_due_done',
        'callbacks',
        ['user_id', 'status', 'due_at', 'done_at', 'client_id'],
        unique=False,
    )
    op.drop_index('ix_callbacks_user_status_due', table_name='callbacks')
    # Every stats figure leaves out archived clients: with this, those few are found without
    # reading all of the rep's clients. Touches never change archived_at, so they never write it.
    op.create_index(
        'ix_clients_user_archived', 'clients', ['user_id', 'archived_at'], unique=False
    )


def downgrade() -> None:
    op.drop_index('ix_clients_user_archived', table_name='clients')
    op.create_index(
        'ix_callbacks_user_status_due', 'callbacks', ['user_id', 'status', 'due_at'], unique=False
    )
    op.drop_index('ix_callbacks_user_status_due_done', table_name='callbacks')

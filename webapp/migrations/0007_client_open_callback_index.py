"""each client's soonest open promise, read in order from one index

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:45:00

"""
from typing import Sequence, Union

from alembic import op


revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """(client_id, status) left the soonest-open-promise subquery to sort, and SQLite, with no
    ANALYZE statistics, preferred (status, due_at) and walked every rep's open promises for each
    client: GET /today took 163 ms for a rep with 2,000 clients. With due_at and id in the index
    the subquery reads one entry."""
    op.create_index(
        'ix_callbacks_client_status_due', 'callbacks', ['client_id', 'status', 'due_at', 'id']
    )
    op.drop_index('ix_callbacks_client_status', table_name='callbacks')


def downgrade() -> None:
    op.create_index('ix_callbacks_client_status', 'callbacks', ['client_id', 'status'])
    op.drop_index('ix_callbacks_client_status_due', table_name='callbacks')

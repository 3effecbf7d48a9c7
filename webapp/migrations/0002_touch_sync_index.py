"""index touches by arrival, for the phone's sync

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:50:00

"""
from typing import Sequence, Union

from alembic import op


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """A phone asks for the touches that arrived since its last sync."""
    op.create_index('ix_touches_user_created', 'touches', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_touches_user_created', table_name='touches')

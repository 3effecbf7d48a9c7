"""the calendar feed's token: derived from a nonce and the app secret, looked up by its hash

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """A private iCalendar feed per rep: the URL's secret is looked up by its SHA-256."""
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('calendar_token_hash', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('calendar_token_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('calendar_nonce', sa.String(length=32), nullable=True))
    op.create_index(
        'ix_users_calendar_token_hash', 'users', ['calendar_token_hash'], unique=True
    )


def downgrade() -> None:
    op.drop_index('ix_users_calendar_token_hash', table_name='users')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('calendar_nonce')
        batch.drop_column('calendar_token_at')
        batch.drop_column('calendar_token_hash')

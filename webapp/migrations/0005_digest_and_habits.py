"""the rep's morning digest, weekly summary push, streak weekends and conversation prompts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Per-rep settings for the digest and weekly pushes, the streak and the prompts."""
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('digest_time', sa.String(length=5), nullable=True))
        batch.add_column(sa.Column('digest_sent_on', sa.Date(), nullable=True))
        batch.add_column(
            sa.Column('weekly_push', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column('weekly_sent_on', sa.Date(), nullable=True))
        batch.add_column(
            sa.Column('streak_weekends', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column('prompts', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.drop_column('prompts')
        batch.drop_column('streak_weekends')
        batch.drop_column('weekly_sent_on')
        batch.drop_column('weekly_push')
        batch.drop_column('digest_sent_on')
        batch.drop_column('digest_time')

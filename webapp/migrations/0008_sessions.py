"""server-side session records: logging out ends a session everywhere, at once; and an index
for deleting a rep's calls

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """One row per logged-in browser; the cookie names the row. Cookies issued before this
    carry a rep's id, which names no row: those reps are asked to log in once more."""
    op.create_table('sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seen_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions'))
    )
    op.create_index('ix_sessions_user', 'sessions', ['user_id'], unique=False)
    op.create_index('ix_sessions_seen_on', 'sessions', ['seen_on'], unique=False)
    # Deleting an account deletes its touches, and each one's promise gets touch_id = null
    # (ON DELETE SET NULL): without an index every deleted touch scanned all of callbacks, 18 s
    # for a rep with 10,000 calls beside another such rep.
    op.create_index('ix_callbacks_touch', 'callbacks', ['touch_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_callbacks_touch', table_name='callbacks')
    op.drop_index('ix_sessions_seen_on', table_name='sessions')
    op.drop_index('ix_sessions_user', table_name='sessions')
    op.drop_table('sessions')

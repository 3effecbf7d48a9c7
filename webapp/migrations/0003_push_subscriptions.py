"""push subscriptions, and the dispatcher's claim token and queue index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:30:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

DISPATCHABLE = "status = 'open' AND notified_at IS NULL AND last_error IS NULL"


def upgrade() -> None:
    """Web Push: one row per browser, and what the dispatcher needs to claim callbacks."""
    op.create_table('push_subscriptions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('endpoint', sa.String(length=2048), nullable=False),
    sa.Column('p256dh', sa.String(length=100), nullable=False),
    sa.Column('auth', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('test_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_push_subscriptions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_subscriptions')),
    sa.UniqueConstraint('endpoint', name=op.f('uq_push_subscriptions_endpoint'))
    )
    op.create_index('ix_push_subscriptions_user', 'push_subscriptions', ['user_id'], unique=False)
    op.create_index('ix_push_subscriptions_test', 'push_subscriptions', ['test_requested_at'], unique=False)
    with op.batch_alter_table('callbacks') as batch:
        batch.add_column(sa.Column('claim_token', sa.String(length=32), nullable=True))
    op.create_index(
        'ix_callbacks_dispatch', 'callbacks', ['due_at'], unique=False,
        sqlite_where=sa.text(DISPATCHABLE), postgresql_where=sa.text(DISPATCHABLE),
    )


def downgrade() -> None:
    op.drop_index('ix_callbacks_dispatch', table_name='callbacks')
    with op.batch_alter_table('callbacks') as batch:
        batch.drop_column('claim_token')
    op.drop_index('ix_push_subscriptions_test', table_name='push_subscriptions')
    op.drop_index('ix_push_subscriptions_user', table_name='push_subscriptions')
    op.drop_table('push_subscriptions')

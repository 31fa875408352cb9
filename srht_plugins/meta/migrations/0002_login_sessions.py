"""login sessions, revocable

Revision ID: meta0002
Revises: meta0001
Create Date: 2026-11-29 22:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = 'meta0002'
down_revision = 'meta0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=256), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_login_session_user_id_user'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_session'))
    )
    with op.batch_alter_table('login_session') as batch:
        batch.create_index(batch.f('ix_login_session_revoked_at'), ['revoked_at'], unique=False)
        batch.create_index(batch.f('ix_login_session_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('login_session')

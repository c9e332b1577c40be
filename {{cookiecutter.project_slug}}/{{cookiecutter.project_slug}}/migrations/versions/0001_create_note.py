"""Create the note table.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("body", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_note")),
        # MySQL: store any Unicode text, whatever the server's default character set.
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    op.create_index(op.f("ix_note_created_at"), "note", ["created_at"])


def downgrade():
    op.drop_index(op.f("ix_note_created_at"), table_name="note")
    op.drop_table("note")

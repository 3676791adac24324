select * from {{ source('lake', 'order_items') }}

select * from {{ source('lake', 'orders') }}

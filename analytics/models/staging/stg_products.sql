select * from {{ source('lake', 'products') }}
